//! Finding and loading the plugins a configuration needs.
//!
//! A plugin lives in one file named `libpalisade_<kind>_<name>.so` in the
//! plugin directory: `plugin_dir` from the configuration, else the
//! `PALISADE_PLUGIN_DIR` environment variable, else
//! `../lib/palisade/plugins` next to the binary when that directory exists,
//! else `/usr/lib/palisade/plugins` (where the packages put them) when that
//! one exists, else `../lib/palisade/plugins` next to the binary (named in
//! the errors). Every file is opened on
//! its own and checked (see `palisade_plugin_api::host`); every problem is
//! collected, so one run of the daemon reports all of them.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use palisade_config::LocalConfig;
use palisade_plugin_api::host::{self, OpenedPlugin};
use palisade_plugin_api::{
    ArchiveCommands, Callback, Dcs, DcsParams, DcsTiming, Mpp, PluginKind, PluginParams, PluginResult, ReplicaMethod,
    ReplicaRequest,
};
use palisade_pycompat::py::truthy;
use serde_json::{Map, Value};

/// The plugin directory for this configuration.
pub fn plugin_dir(configured: Option<&Path>, env: Option<&str>) -> PathBuf {
    if let Some(dir) = configured {
        return dir.to_path_buf();
    }
    if let Some(dir) = env.filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().ok();
    let bin_dir = exe.as_deref().and_then(Path::parent).unwrap_or_else(|| Path::new("."));
    default_dir(bin_dir.join("../lib/palisade/plugins"), Path::new(SYSTEM_PLUGIN_DIR))
}

/// `next_to_binary` when it is a directory, else `system` when that is one,
/// else `next_to_binary` (for the error messages).
fn default_dir(next_to_binary: PathBuf, system: &Path) -> PathBuf {
    if !next_to_binary.is_dir() && system.is_dir() {
        return system.to_path_buf();
    }
    next_to_binary
}

/// Where the Debian packages install plugins. `/usr/bin/palisade` finds
/// it as `../lib/palisade/plugins`; a binary elsewhere (say
/// `/usr/local/bin`) without a plugin directory of its own falls back to it.
pub const SYSTEM_PLUGIN_DIR: &str = "/usr/lib/palisade/plugins";

/// `libpalisade_<kind>_<name>.so`.
pub fn file_name(kind: PluginKind, name: &str) -> String {
    format!("libpalisade_{}_{}.so", kind.as_str(), name.replace('-', "_"))
}

/// One replica-creation method, in `create_replica_methods` order.
pub struct ReplicaPlugin {
    /// The method's name in the configuration.
    pub method: String,
    pub plugin: Box<dyn ReplicaMethod>,
    /// Whether the method works without a running member to copy from.
    pub without_leader: bool,
    /// Patroni's `keep_data` for this method: the host leaves the data
    /// directory alone when the method fails (and before reinitialising).
    /// Never set for `basebackup`, which Patroni always cleans.
    pub keep_data: bool,
    /// The `restore_command` and `archive_cleanup_command` matching the
    /// method's archive (asked once, at load), for standby clusters.
    pub archive: ArchiveCommands,
}

/// What each loaded replica method offers a standby cluster (its
/// archive's `restore_command` and `archive_cleanup_command`), by method
/// name, in `create_replica_methods` order. The plugins were asked once, at
/// load, so this is plain data the daemon can keep and clone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ArchiveOffers(pub Vec<(String, ArchiveCommands)>);

impl ArchiveOffers {
    pub fn of(replicas: &[ReplicaPlugin]) -> Self {
        Self(replicas.iter().map(|r| (r.method.clone(), r.archive.clone())).collect())
    }

    /// The recovery commands of a standby cluster's members: each one
    /// `configured` in the `standby_cluster` section wins; one left unset
    /// comes from the first of `methods` (the standby cluster's
    /// `create_replica_methods`, else `postgresql.create_replica_methods`)
    /// whose plugin offers it (`pgbackrest`, `walg`), so that a standby
    /// cluster cloned from a backup repository also follows its primary
    /// through it.
    pub fn standby_commands(&self, methods: &[String], configured: &ArchiveCommands) -> ArchiveCommands {
        let offered = |pick: fn(&ArchiveCommands) -> &Option<String>| {
            methods
                .iter()
                .filter_map(|m| self.0.iter().find(|(name, _)| name == m))
                .find_map(|(_, offer)| pick(offer).clone())
        };
        ArchiveCommands {
            restore_command: configured.restore_command.clone().or_else(|| offered(|a| &a.restore_command)),
            archive_cleanup_command: configured
                .archive_cleanup_command
                .clone()
                .or_else(|| offered(|a| &a.archive_cleanup_command)),
        }
    }
}

/// Everything loaded for one daemon.
pub struct Plugins {
    pub dcs: Arc<dyn Dcs>,
    pub dcs_name: String,
    pub replicas: Vec<ReplicaPlugin>,
    pub callback: Option<Box<dyn Callback>>,
}

/// A problem found while loading: the file and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadProblem(pub String);

impl std::fmt::Display for LoadProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn open(dir: &Path, kind: PluginKind, name: &str, problems: &mut Vec<LoadProblem>) -> Option<OpenedPlugin> {
    let path = dir.join(file_name(kind, name));
    match host::open(&path, kind, Some(name)) {
        Ok(p) => {
            tracing::debug!("loaded {} plugin '{}' {} from {}", kind, name, p.info().plugin_version, path.display());
            Some(p)
        }
        Err(e) => {
            if let Some(details) = e.details() {
                tracing::debug!("{}: {details}", path.display());
            }
            problems.push(LoadProblem(e.to_string()));
            None
        }
    }
}

/// The settings a DCS plugin is created with.
pub fn dcs_params(config: &LocalConfig, section: &Map<String, Value>, timing: DcsTiming) -> DcsParams {
    DcsParams {
        scope: config.scope.clone(),
        namespace: config.namespace.clone(),
        name: config.name.clone(),
        group: config.citus.as_ref().map(|c| c.group),
        timing,
        section_json: Value::Object(section.clone()).to_string(),
    }
}

/// Load only the DCS plugin (what palisadectl needs).
pub fn load_dcs(
    config: &LocalConfig,
    dir: &Path,
    timing: DcsTiming,
) -> Result<(Arc<dyn Dcs>, String), Vec<LoadProblem>> {
    let mut problems = Vec::new();
    match open_dcs(config, dir, timing, &mut problems) {
        Some(d) if problems.is_empty() => Ok(d),
        _ => Err(problems),
    }
}

fn open_dcs(
    config: &LocalConfig,
    dir: &Path,
    timing: DcsTiming,
    problems: &mut Vec<LoadProblem>,
) -> Option<(Arc<dyn Dcs>, String)> {
    match &config.dcs {
        None => {
            problems.push(LoadProblem(
                "no DCS is configured: add an etcd3, consul, zookeeper, exhibitor or kubernetes section".into(),
            ));
            None
        }
        Some(section) => open(dir, PluginKind::Dcs, &section.kind, problems).and_then(|p| {
            match p.new_dcs(dcs_params(config, &section.section, timing)) {
                Ok(d) => Some((Arc::<dyn Dcs>::from(d), section.kind.clone())),
                Err(e) => {
                    problems.push(LoadProblem(format!("{}: {e}", p.path().display())));
                    None
                }
            }
        }),
    }
}

/// Which replica plugin runs `method`, and the section it gets:
///
/// 1. a method whose section names a `command` is a custom script, run by
///    the generic `command` plugin exactly as Patroni runs it, whatever the
///    method is called (so a Patroni `pgbackrest` method with a `command`
///    keeps its meaning);
/// 2. `basebackup`, and any method with a plugin of its own installed
///    (`pgbackrest`, `walg`), has that plugin, which reads the section as
///    its typed settings;
/// 3. any other method runs the method's name as the command, as Patroni
///    does (`create_replica_methods: [mytool]` runs `mytool --scope=...
///    --role=replica ...`).
fn replica_plugin_for(dir: &Path, method: &str, section: &mut Value) -> String {
    if section.get("command").is_some() {
        return "command".into();
    }
    if method == "basebackup" || dir.join(file_name(PluginKind::Replica, method)).exists() {
        return method.into();
    }
    let mut with_command = section.as_object().cloned().unwrap_or_default();
    with_command.insert("command".into(), Value::String(method.into()));
    *section = Value::Object(with_command);
    "command".into()
}

/// Replica plugins Palisade ships besides basebackup and command: a
/// `create_replica_methods` entry of that name without a `command` reads
/// its section as the plugin's settings.
pub const OWN_REPLICA_PLUGINS: [&str; 2] = ["pgbackrest", "walg"];

/// Load every plugin the configuration needs, or report every problem.
pub fn load(config: &LocalConfig, dir: &Path, timing: DcsTiming) -> Result<Plugins, Vec<LoadProblem>> {
    load_with(config, dir, timing, &[])
}

/// [`load`], with the replica methods of `also` (a standby cluster's
/// `create_replica_methods`) loaded too, after those of
/// `postgresql.create_replica_methods`. Each reads its `postgresql.<method>`
/// section, as Patroni's methods do.
pub fn load_with(
    config: &LocalConfig,
    dir: &Path,
    timing: DcsTiming,
    also: &[String],
) -> Result<Plugins, Vec<LoadProblem>> {
    load_all(config, dir, timing, Replicas::Load { also })
}

/// [`load_with`], with the replica methods described by `probed` (what
/// [`probe_replicas`] found for the same configuration, standby methods
/// included, in another process) instead of loaded: each replica is made
/// by `<worker> --replica-worker` (see [`crate::worker`]), so the methods'
/// plugins never enter this process.
pub fn load_with_probed(
    config: &LocalConfig,
    dir: &Path,
    timing: DcsTiming,
    probed: Vec<ReplicaFacts>,
    worker: &Path,
) -> Result<Plugins, Vec<LoadProblem>> {
    load_all(config, dir, timing, Replicas::Probed(probed, worker))
}

/// Open a replica method's plugin and create the method (the worker's way
/// in), or say what is wrong.
pub fn open_replica(dir: &Path, plugin_name: &str, params: PluginParams) -> Result<Box<dyn ReplicaMethod>, String> {
    let mut problems = Vec::new();
    match open(dir, PluginKind::Replica, plugin_name, &mut problems) {
        Some(p) => p.new_replica(params).map_err(|e| format!("{}: {e}", p.path().display())),
        None => Err(problems.into_iter().map(|p| p.0).collect::<Vec<_>>().join("; ")),
    }
}

/// What the daemon needs of a replica method besides making replicas.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaFacts {
    pub method: String,
    pub without_leader: bool,
    pub keep_data: bool,
    pub archive: ArchiveCommands,
}

impl ReplicaFacts {
    /// As JSON, to pass between processes.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "method": self.method,
            "without_leader": self.without_leader,
            "keep_data": self.keep_data,
            "restore_command": self.archive.restore_command,
            "archive_cleanup_command": self.archive.archive_cleanup_command,
        })
    }

    /// The value [`ReplicaFacts::to_json`] made, or `None`.
    pub fn from_json(v: &Value) -> Option<Self> {
        let text = |k: &str| match v.get(k) {
            Some(Value::String(s)) => Some(Some(s.clone())),
            Some(Value::Null) => Some(None),
            _ => None,
        };
        Some(Self {
            method: v.get("method")?.as_str()?.to_string(),
            without_leader: v.get("without_leader")?.as_bool()?,
            keep_data: v.get("keep_data")?.as_bool()?,
            archive: ArchiveCommands {
                restore_command: text("restore_command")?,
                archive_cleanup_command: text("archive_cleanup_command")?,
            },
        })
    }
}

/// Load the replica methods' plugins as [`load_with`] does and report
/// what the daemon needs of each, or every problem. The daemon runs this
/// in a child process at start (`palisade_daemon::probe`), so that a
/// problem stops it at start while the plugins' code stays out of it.
pub fn probe_replicas(
    config: &LocalConfig,
    dir: &Path,
    also: &[String],
) -> Result<Vec<ReplicaFacts>, Vec<LoadProblem>> {
    let mut problems = Vec::new();
    let replicas = load_replicas(config, dir, also, &mut problems);
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(replicas
        .iter()
        .map(|r| ReplicaFacts {
            method: r.method.clone(),
            without_leader: r.without_leader,
            keep_data: r.keep_data,
            archive: r.archive.clone(),
        })
        .collect())
}

/// The replica methods to load: `postgresql.create_replica_methods`, then
/// those of `also` not among them, each once.
fn replica_methods<'a>(config: &'a LocalConfig, also: &'a [String]) -> Vec<&'a String> {
    let own = &config.postgresql.create_replica_methods;
    let extra = also.iter().filter(|m| !own.contains(m));
    let mut seen = std::collections::BTreeSet::new();
    own.iter().chain(extra).filter(|m| seen.insert(m.as_str())).collect()
}

/// A method's plugin name, section and creation parameters.
fn replica_source(config: &LocalConfig, dir: &Path, method: &str) -> (String, Value, PluginParams) {
    let mut section = config.postgresql.replica_method_sections.get(method).cloned().unwrap_or(Value::Null);
    let plugin_name = replica_plugin_for(dir, method, &mut section);
    let params =
        PluginParams { scope: config.scope.clone(), name: config.name.clone(), config_json: section.to_string() };
    (plugin_name, section, params)
}

fn load_replicas(
    config: &LocalConfig,
    dir: &Path,
    also: &[String],
    problems: &mut Vec<LoadProblem>,
) -> Vec<ReplicaPlugin> {
    let mut replicas = Vec::new();
    for method in replica_methods(config, also) {
        let (plugin_name, section, params) = replica_source(config, dir, method);
        if plugin_name == "command" && OWN_REPLICA_PLUGINS.contains(&method.as_str()) {
            let has_command = config.postgresql.replica_method_sections.get(method).and_then(|s| s.get("command"));
            if has_command.is_none() {
                tracing::warn!(
                    "replica method '{method}' has no command and its plugin is not installed ({}): '{method}' \
                     itself is run as the command, as Patroni does",
                    dir.join(file_name(PluginKind::Replica, method)).display()
                );
            }
        }
        let Some(p) = open(dir, PluginKind::Replica, &plugin_name, problems) else {
            continue;
        };
        match p.new_replica(params) {
            Ok(plugin) => {
                let without_leader = plugin.can_work_without_leader();
                // Patroni reads `keep_data` from every method's section but
                // basebackup's, with Python's truth value.
                let keep_data = method != "basebackup" && section.get("keep_data").is_some_and(truthy);
                let archive = match plugin.archive_commands() {
                    Ok(a) => a,
                    Err(e) => {
                        problems.push(LoadProblem(format!("{}: archive commands: {e}", p.path().display())));
                        continue;
                    }
                };
                replicas.push(ReplicaPlugin { method: method.clone(), plugin, without_leader, keep_data, archive });
            }
            Err(e) => problems.push(LoadProblem(format!("{}: {e}", p.path().display()))),
        }
    }
    replicas
}

/// A replica method known from [`ReplicaFacts`], each replica made by a
/// worker process.
struct WorkerReplica {
    dir: PathBuf,
    plugin_name: String,
    params: PluginParams,
    facts: ReplicaFacts,
    worker: crate::worker::Worker,
}

impl ReplicaMethod for WorkerReplica {
    fn can_work_without_leader(&self) -> bool {
        self.facts.without_leader
    }
    fn create_replica(&self, request: &ReplicaRequest) -> PluginResult<()> {
        let log_level = match tracing::level_filters::LevelFilter::current().into_level() {
            Some(level) => level.to_string(),
            None => "ERROR".to_string(),
        };
        self.worker.run(&crate::worker::Job {
            dir: self.dir.clone(),
            plugin: self.plugin_name.clone(),
            params: self.params.clone(),
            request: request.clone(),
            log_level,
        })
    }
    fn cancel(&self) {
        self.worker.cancel();
    }
    fn archive_commands(&self) -> PluginResult<ArchiveCommands> {
        Ok(self.facts.archive.clone())
    }
}

/// Where [`load_all`] gets the replica methods from.
enum Replicas<'a> {
    /// Load them, with those of a standby cluster (`also`).
    Load { also: &'a [String] },
    /// As a child process found them; replicas made by `worker`.
    Probed(Vec<ReplicaFacts>, &'a Path),
}

fn load_all(
    config: &LocalConfig,
    dir: &Path,
    timing: DcsTiming,
    how: Replicas<'_>,
) -> Result<Plugins, Vec<LoadProblem>> {
    let mut problems = Vec::new();
    let dcs = open_dcs(config, dir, timing, &mut problems);

    let replicas = match how {
        Replicas::Load { also } => load_replicas(config, dir, also, &mut problems),
        Replicas::Probed(probed, worker) => probed
            .into_iter()
            .map(|facts| {
                let (plugin_name, _, params) = replica_source(config, dir, &facts.method);
                ReplicaPlugin {
                    method: facts.method.clone(),
                    without_leader: facts.without_leader,
                    keep_data: facts.keep_data,
                    archive: facts.archive.clone(),
                    plugin: Box::new(WorkerReplica {
                        dir: dir.to_path_buf(),
                        plugin_name,
                        params,
                        facts,
                        worker: crate::worker::Worker::new(worker.to_path_buf()),
                    }),
                }
            })
            .collect(),
    };

    let callback = if config.postgresql.callbacks.is_empty() {
        None
    } else {
        let map: Map<String, Value> =
            config.postgresql.callbacks.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
        open(dir, PluginKind::Callback, "script", &mut problems).and_then(|p| {
            let params = PluginParams {
                scope: config.scope.clone(),
                name: config.name.clone(),
                config_json: Value::Object(map).to_string(),
            };
            match p.new_callback(params) {
                Ok(c) => Some(c),
                Err(e) => {
                    problems.push(LoadProblem(format!("{}: {e}", p.path().display())));
                    None
                }
            }
        })
    };

    match dcs {
        Some((dcs, dcs_name)) if problems.is_empty() => Ok(Plugins { dcs, dcs_name, replicas, callback }),
        _ => Err(problems),
    }
}

/// The MPP plugin the configuration asks for: `mpp-citus`
/// (`libpalisade_mpp_citus.so`) when there is a valid `citus` section,
/// created with that section (`{"group": <int>, "database": <str>}`);
/// `Ok(None)` without one. The plugin checks the section again and names
/// the key it does not accept.
pub fn load_mpp(config: &LocalConfig, dir: &Path) -> Result<Option<Box<dyn Mpp>>, Vec<LoadProblem>> {
    let Some(citus) = &config.citus else {
        return Ok(None);
    };
    let mut problems = Vec::new();
    let Some(p) = open(dir, PluginKind::Mpp, "citus", &mut problems) else {
        return Err(problems);
    };
    let section = serde_json::json!({"group": citus.group, "database": citus.database});
    let params =
        PluginParams { scope: config.scope.clone(), name: config.name.clone(), config_json: section.to_string() };
    match p.new_mpp(params) {
        Ok(m) => Ok(Some(m)),
        Err(e) => Err(vec![LoadProblem(format!("{}: {e}", p.path().display()))]),
    }
}

/// The Debian package that ships plugin `name` of `kind`
/// (`palisade-dcs-etcd3`, `palisade-callback-script`...).
pub fn package_name(kind: PluginKind, name: &str) -> String {
    format!("palisade-{}-{}", kind.as_str(), name.replace('_', "-"))
}

/// One file of the plugin directory, as `palisade --list-plugins` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    pub file: PathBuf,
    /// The kind and name the file name says (`libpalisade_<kind>_<name>.so`).
    pub kind: PluginKind,
    pub name: String,
    /// What the plugin says about itself, or why it cannot be loaded.
    pub loaded: Result<palisade_plugin_api::PluginInfo, String>,
}

/// Every `libpalisade_<kind>_<name>.so` in `dir`, sorted by file name, each
/// opened and checked as the daemon would open it. Files that do not look
/// like plugins are skipped; a missing directory is an empty list.
pub fn installed(dir: &Path) -> std::io::Result<Vec<Installed>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let Some((kind, name)) = file.file_name().and_then(|f| f.to_str()).and_then(parse_file_name) else {
            continue;
        };
        // The name in the file has `_` for `-`: check the kind here and
        // compare the name loosely, so that `wal-g` in `..._wal_g.so` fits.
        let loaded = host::open(&file, kind, None).map_err(|e| e.to_string()).and_then(|p| {
            let info = p.info().clone();
            if info.name.replace('-', "_") == name {
                Ok(info)
            } else {
                Err(format!(
                    "{}: the file should hold plugin '{name}' but holds plugin '{}'",
                    file.display(),
                    info.name
                ))
            }
        });
        out.push(Installed { file, kind, name, loaded });
    }
    Ok(out)
}

/// `libpalisade_<kind>_<name>.so` -> (kind, name as written in the file).
fn parse_file_name(file: &str) -> Option<(PluginKind, String)> {
    let stem = file.strip_prefix("libpalisade_")?.strip_suffix(".so")?;
    PluginKind::ALL.into_iter().find_map(|kind| {
        let name = stem.strip_prefix(kind.as_str())?.strip_prefix('_')?;
        (!name.is_empty()).then(|| (kind, name.to_string()))
    })
}

/// A plugin a configuration needs, and the setting that needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Needed {
    pub kind: PluginKind,
    pub name: String,
    /// The configuration key that asks for it (`etcd3`,
    /// `postgresql.create_replica_methods`...).
    pub because: String,
}

/// Every plugin `config` makes the daemon load, in load order, with the
/// same choices as [`load_with`] and [`load_mpp`] (`also`: a standby
/// cluster's `create_replica_methods`). Without a DCS section nothing
/// names the DCS plugin: [`load`] reports that on its own.
pub fn needed(config: &LocalConfig, dir: &Path, also: &[String]) -> Vec<Needed> {
    let mut out = Vec::new();
    if let Some(section) = &config.dcs {
        out.push(Needed { kind: PluginKind::Dcs, name: section.kind.clone(), because: section.kind.clone() });
    }
    let own = &config.postgresql.create_replica_methods;
    let mut seen = std::collections::BTreeSet::new();
    for (method, key) in own
        .iter()
        .map(|m| (m, "postgresql.create_replica_methods"))
        .chain(also.iter().map(|m| (m, "standby_cluster.create_replica_methods")))
    {
        if !seen.insert(method.as_str()) {
            continue;
        }
        let mut section = config.postgresql.replica_method_sections.get(method).cloned().unwrap_or(Value::Null);
        let name = replica_plugin_for(dir, method, &mut section);
        let because = if name == *method { key.to_string() } else { format!("{key}: {method}") };
        if !out.iter().any(|n: &Needed| n.kind == PluginKind::Replica && n.name == name) {
            out.push(Needed { kind: PluginKind::Replica, name, because });
        }
    }
    if !config.postgresql.callbacks.is_empty() {
        out.push(Needed { kind: PluginKind::Callback, name: "script".into(), because: "postgresql.callbacks".into() });
    }
    if config.citus.is_some() {
        out.push(Needed { kind: PluginKind::Mpp, name: "citus".into(), because: "citus".into() });
    }
    out
}

/// The DCS timing from durations in seconds.
pub fn timing(ttl: Duration, loop_wait: Duration, retry_timeout: Duration) -> DcsTiming {
    DcsTiming { ttl, loop_wait, retry_timeout }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn file_names() {
        assert_eq!(file_name(PluginKind::Dcs, "etcd3"), "libpalisade_dcs_etcd3.so");
        assert_eq!(file_name(PluginKind::Replica, "wal-g"), "libpalisade_replica_wal_g.so");
        assert_eq!(file_name(PluginKind::Callback, "script"), "libpalisade_callback_script.so");
        assert_eq!(file_name(PluginKind::Mpp, "citus"), "libpalisade_mpp_citus.so");
    }

    /// Which plugin runs each `create_replica_methods` entry, as Patroni
    /// would run it: a `command` wins; a method without one runs its own
    /// name unless a plugin of that name is installed.
    #[test]
    fn replica_methods_map_to_plugins() {
        let dir = std::env::temp_dir().join(format!("palisade-replica-plugins-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(dir.join(file_name(PluginKind::Replica, "pgbackrest")), b"").expect("fake plugin file");
        let cases = [
            ("basebackup", json!(null), "basebackup", json!(null)),
            ("basebackup", json!({"max-rate": "10M"}), "basebackup", json!({"max-rate": "10M"})),
            (
                "wal_e",
                json!({"command": "/bin/restore", "x": 1}),
                "command",
                json!({"command": "/bin/restore", "x": 1}),
            ),
            ("pgbackrest", json!({"stanza": "main"}), "pgbackrest", json!({"stanza": "main"})),
            // Patroni's documented pgBackRest method keeps its meaning.
            (
                "pgbackrest",
                json!({"command": "pgbackrest --stanza=main --delta restore", "keep_data": true, "no_params": true}),
                "command",
                json!({"command": "pgbackrest --stanza=main --delta restore", "keep_data": true, "no_params": true}),
            ),
            // Not installed here: run as a command, as Patroni would.
            ("walg", json!(null), "command", json!({"command": "walg"})),
            ("mytool", json!(null), "command", json!({"command": "mytool"})),
            ("mytool", json!({"keep_data": true}), "command", json!({"keep_data": true, "command": "mytool"})),
        ];
        for (method, section, plugin, passed) in cases {
            let mut s = section.clone();
            assert_eq!(replica_plugin_for(&dir, method, &mut s), plugin, "{method} {section}");
            assert_eq!(s, passed, "{method} {section}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    struct NoMethod;

    impl ReplicaMethod for NoMethod {
        fn can_work_without_leader(&self) -> bool {
            false
        }
        fn create_replica(&self, _: &palisade_plugin_api::ReplicaRequest) -> palisade_plugin_api::PluginResult<()> {
            Ok(())
        }
        fn cancel(&self) {}
    }

    fn replica(method: &str, restore: Option<&str>, cleanup: Option<&str>) -> ReplicaPlugin {
        ReplicaPlugin {
            method: method.into(),
            plugin: Box::new(NoMethod),
            without_leader: false,
            keep_data: false,
            archive: ArchiveCommands {
                restore_command: restore.map(String::from),
                archive_cleanup_command: cleanup.map(String::from),
            },
        }
    }

    /// The standby leader's recovery commands: what `standby_cluster` sets
    /// wins, field by field; the rest comes from the first listed method
    /// that offers it.
    #[test]
    fn standby_commands_fill_what_is_not_configured() {
        let replicas = [
            replica("basebackup", None, None),
            replica("pgbackrest", Some("pgbackrest --stanza=main archive-get %f \"%p\""), None),
            replica("walg", Some("wal-g wal-fetch \"%f\" \"%p\""), Some("cleanup %r")),
        ];
        let methods = |m: &[&str]| m.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let none = ArchiveCommands::default();
        /// Methods listed, what `standby_cluster` sets, the expected
        /// restore and cleanup commands.
        type Case<'a> = (&'a [&'a str], ArchiveCommands, Option<&'a str>, Option<&'a str>);
        let cases: [Case<'_>; 6] = [
            (&["basebackup"], none.clone(), None, None),
            (&["basebackup", "pgbackrest"], none.clone(), Some("pgbackrest --stanza=main archive-get %f \"%p\""), None),
            (&["walg", "pgbackrest"], none.clone(), Some("wal-g wal-fetch \"%f\" \"%p\""), Some("cleanup %r")),
            (
                &["pgbackrest", "walg"],
                none.clone(),
                Some("pgbackrest --stanza=main archive-get %f \"%p\""),
                Some("cleanup %r"),
            ),
            (
                &["pgbackrest"],
                ArchiveCommands { restore_command: Some("cp /arch/%f %p".into()), archive_cleanup_command: None },
                Some("cp /arch/%f %p"),
                None,
            ),
            // A method that is not loaded offers nothing.
            (&["mytool"], none.clone(), None, None),
        ];
        for (list, configured, restore, cleanup) in cases {
            let got = ArchiveOffers::of(&replicas).standby_commands(&methods(list), &configured);
            assert_eq!(got.restore_command.as_deref(), restore, "{list:?}");
            assert_eq!(got.archive_cleanup_command.as_deref(), cleanup, "{list:?}");
        }
    }

    #[test]
    fn plugin_dir_precedence() {
        assert_eq!(plugin_dir(Some(Path::new("/a")), Some("/b")), PathBuf::from("/a"));
        assert_eq!(plugin_dir(None, Some("/b")), PathBuf::from("/b"));
        // Without either: next to the binary, or the packages' directory
        // (when installed on this machine and there is none next to it).
        for default in [plugin_dir(None, None), plugin_dir(None, Some(""))] {
            assert!(
                default.ends_with("../lib/palisade/plugins") || default == Path::new(SYSTEM_PLUGIN_DIR),
                "{}",
                default.display()
            );
        }
    }

    #[test]
    fn plugin_file_names_and_packages() {
        assert_eq!(parse_file_name("libpalisade_dcs_etcd3.so"), Some((PluginKind::Dcs, "etcd3".into())));
        assert_eq!(parse_file_name("libpalisade_replica_wal_g.so"), Some((PluginKind::Replica, "wal_g".into())));
        assert_eq!(parse_file_name("libpalisade_mpp_citus.so"), Some((PluginKind::Mpp, "citus".into())));
        for bad in ["libpalisade_dcs_.so", "libpalisade_other_x.so", "libpalisade_dcs_etcd3.so.1", "README"] {
            assert_eq!(parse_file_name(bad), None, "{bad}");
        }
        assert_eq!(package_name(PluginKind::Dcs, "etcd3"), "palisade-dcs-etcd3");
        assert_eq!(package_name(PluginKind::Callback, "script"), "palisade-callback-script");
    }

    #[test]
    fn the_directory_next_to_the_binary_wins_over_the_packages_one() {
        let base = std::env::temp_dir().join(format!("palisade-default-dir-{}", std::process::id()));
        let (next, system) = (base.join("next"), base.join("system"));
        let missing = base.join("missing");
        std::fs::create_dir_all(&next).expect("temp dir");
        std::fs::create_dir_all(&system).expect("temp dir");
        assert_eq!(default_dir(next.clone(), &system), next);
        assert_eq!(default_dir(missing.clone(), &system), system);
        assert_eq!(default_dir(missing.clone(), &base.join("also-missing")), missing);
        let _ = std::fs::remove_dir_all(&base);
    }
}
