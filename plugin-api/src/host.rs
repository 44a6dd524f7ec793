//! The host side: open a plugin file, check it, and wrap what it constructs
//! back into the plain traits of [`crate::contract`].
//!
//! Each file is opened on its own with `lib_header_from_path` and
//! `init_root_module`: abi_stable's `RootModule::load_from_file` caches one
//! module per interface type, so a second plugin would silently come back
//! as the first.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use abi_stable::library::{lib_header_from_path, LibraryError, RootModule};
use abi_stable::std_types::{ROption, RResult, RStr};

use crate::contract::*;
use crate::ffi::*;

/// Why a plugin file was refused. Every variant names the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadError {
    /// There is no such file.
    Missing { path: PathBuf },
    /// The file exists but is not a palisade plugin (not a shared library,
    /// or one without our root module).
    NotAPlugin { path: PathBuf, reason: String },
    /// The plugin was built against an incompatible plugin-api (a different
    /// abi_stable, crate version or type layout).
    IncompatibleAbi { path: PathBuf, expected: String, found: String, details: String },
    /// The plugin says it speaks another API generation.
    IncompatibleVersion { path: PathBuf, expected: u32, found: u32 },
    /// The plugin is of another kind than the configuration asks for.
    WrongKind { path: PathBuf, expected: PluginKind, found: PluginKind, name: String },
    /// The plugin is called something else than its file name says.
    WrongName { path: PathBuf, expected: String, found: String },
    /// The plugin's `info` made no sense.
    BadInfo { path: PathBuf, reason: String },
}

impl LoadError {
    pub fn path(&self) -> &Path {
        match self {
            Self::Missing { path }
            | Self::NotAPlugin { path, .. }
            | Self::IncompatibleAbi { path, .. }
            | Self::IncompatibleVersion { path, .. }
            | Self::WrongKind { path, .. }
            | Self::WrongName { path, .. }
            | Self::BadInfo { path, .. } => path,
        }
    }

    /// The long form, for debug logs (abi_stable's layout report).
    pub fn details(&self) -> Option<&str> {
        match self {
            Self::IncompatibleAbi { details, .. } if !details.is_empty() => Some(details),
            _ => None,
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing { path } => write!(f, "{}: no such plugin file", path.display()),
            Self::NotAPlugin { path, reason } => {
                write!(f, "{}: not a palisade plugin ({reason})", path.display())
            }
            Self::IncompatibleAbi { path, expected, found, .. } => write!(
                f,
                "{}: incompatible plugin ABI: this palisade expects {expected}, the plugin has {found}; \
                 rebuild the plugin against this palisade's plugin-api",
                path.display()
            ),
            Self::IncompatibleVersion { path, expected, found } => write!(
                f,
                "{}: incompatible plugin API version {found}, this palisade speaks version {expected}",
                path.display()
            ),
            Self::WrongKind { path, expected, found, name } => write!(
                f,
                "{}: plugin '{name}' is a {found} plugin, but a {expected} plugin is needed here",
                path.display()
            ),
            Self::WrongName { path, expected, found } => {
                write!(f, "{}: the file should hold plugin '{expected}' but holds plugin '{found}'", path.display())
            }
            Self::BadInfo { path, reason } => write!(f, "{}: invalid plugin information: {reason}", path.display()),
        }
    }
}

impl std::error::Error for LoadError {}

/// A plugin library that passed every load-time check.
pub struct OpenedPlugin {
    path: PathBuf,
    info: PluginInfo,
    module: PluginModRef,
}

impl fmt::Debug for OpenedPlugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenedPlugin").field("path", &self.path).field("info", &self.info).finish()
    }
}

fn library_error(path: &Path, e: LibraryError) -> LoadError {
    let path = path.to_path_buf();
    match e {
        LibraryError::OpenError { err, .. } => {
            if !path.exists() {
                LoadError::Missing { path }
            } else {
                let text = err.to_string();
                let shown = path.display().to_string();
                let reason = text.strip_prefix(&shown).map(|r| r.trim_start_matches(':').trim()).unwrap_or(&text);
                LoadError::NotAPlugin { path, reason: first_line(reason) }
            }
        }
        LibraryError::GetSymbolError { .. } => {
            LoadError::NotAPlugin { path, reason: "it does not export a palisade root module".into() }
        }
        LibraryError::InvalidAbiHeader(header) => LoadError::IncompatibleAbi {
            path,
            expected: format!(
                "abi_stable ABI {}.{}",
                abi_stable::library::AbiHeader::VALUE.abi_major,
                abi_stable::library::AbiHeader::VALUE.abi_minor
            ),
            found: format!("abi_stable ABI {}.{}", header.abi_major, header.abi_minor),
            details: String::new(),
        },
        LibraryError::IncompatibleVersionNumber { expected_version, actual_version, .. } => {
            LoadError::IncompatibleAbi {
                path,
                expected: format!("plugin-api {expected_version}"),
                found: format!("plugin-api {actual_version}"),
                details: String::new(),
            }
        }
        LibraryError::AbiInstability(details) => LoadError::IncompatibleAbi {
            path,
            expected: format!("plugin-api {} root module layout", PluginModRef::VERSION_STRINGS.version),
            found: "a different layout".into(),
            details: details.to_string(),
        },
        other => LoadError::NotAPlugin { path, reason: first_line(other.to_string().trim()) },
    }
}

fn first_line(s: &str) -> String {
    s.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("unknown error").to_string()
}

/// Open and check one plugin file: that it is a palisade plugin with a
/// compatible ABI and API version, of the expected kind and, if given, name.
pub fn open(path: &Path, kind: PluginKind, name: Option<&str>) -> Result<OpenedPlugin, LoadError> {
    if !path.exists() {
        return Err(LoadError::Missing { path: path.to_path_buf() });
    }
    let header = lib_header_from_path(path).map_err(|e| library_error(path, e))?;
    let module: PluginModRef = header.init_root_module().map_err(|e| library_error(path, e))?;
    let info = (module.info())().to_info().map_err(|reason| LoadError::BadInfo { path: path.to_path_buf(), reason })?;
    if info.api_version != crate::API_VERSION {
        return Err(LoadError::IncompatibleVersion {
            path: path.to_path_buf(),
            expected: crate::API_VERSION,
            found: info.api_version,
        });
    }
    if info.kind != kind {
        return Err(LoadError::WrongKind {
            path: path.to_path_buf(),
            expected: kind,
            found: info.kind,
            name: info.name.clone(),
        });
    }
    if let Some(expected) = name {
        if info.name != expected {
            return Err(LoadError::WrongName {
                path: path.to_path_buf(),
                expected: expected.to_string(),
                found: info.name.clone(),
            });
        }
    }
    Ok(OpenedPlugin { path: path.to_path_buf(), info, module })
}

/// How many bytes of a plugin's error message or log line the host keeps:
/// a plugin that answers with a megabyte must not write a megabyte into
/// the log every cycle.
pub const MESSAGE_LIMIT: usize = 8 << 10;

/// A plugin's text made fit for one log line: control characters (a
/// newline could forge a log line of its own, an escape sequence recolour
/// a terminal) and bidirectional overrides are escaped, and the text is cut
/// at [`MESSAGE_LIMIT`] bytes, saying how much was left out.
pub fn one_line(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char =
        |c: char| (c.is_control() && c != '\t') || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    if text.len() <= MESSAGE_LIMIT && !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len().min(MESSAGE_LIMIT) + 40);
    for (i, c) in text.char_indices() {
        if out.len() >= MESSAGE_LIMIT {
            out.push_str(&format!(" [... {} more bytes]", text.len() - i));
            break;
        }
        if unsafe_char(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// A plugin's error as the host passes it on: its message on one bounded
/// line ([`one_line`]), and never empty.
fn tame(mut e: PluginError) -> PluginError {
    if e.message.trim().is_empty() {
        e.message = "(the plugin gave no message)".into();
    } else if let std::borrow::Cow::Owned(m) = one_line(&e.message) {
        e.message = m;
    }
    e
}

/// A plugin call's answer on the host's side, its error tamed.
fn answer<T, U: From<T>>(r: FfiResult<T>) -> PluginResult<U> {
    from_ffi(r).map_err(tame)
}

extern "C" fn emit_to_tracing(level: u8, plugin: RStr<'_>, target: RStr<'_>, message: RStr<'_>) {
    let (plugin, target) = (one_line(plugin.as_str()), one_line(target.as_str()));
    let message = one_line(message.as_str());
    match level {
        level::ERROR => tracing::error!(target: "plugin", "[{plugin}] {message}"),
        level::WARN => tracing::warn!(target: "plugin", "[{plugin}] {message}"),
        level::INFO => tracing::info!(target: "plugin", "[{plugin}] {message}"),
        level::DEBUG => tracing::debug!(target: "plugin", "[{plugin}] {target}: {message}"),
        _ => tracing::trace!(target: "plugin", "[{plugin}] {target}: {message}"),
    }
}

fn log_sink() -> LogSink {
    use tracing::level_filters::LevelFilter;
    let max_level = match LevelFilter::current() {
        LevelFilter::OFF => 0,
        LevelFilter::ERROR => level::ERROR,
        LevelFilter::WARN => level::WARN,
        LevelFilter::INFO => level::INFO,
        LevelFilter::DEBUG => level::DEBUG,
        _ => level::TRACE,
    };
    LogSink { emit: emit_to_tracing, max_level }
}

impl OpenedPlugin {
    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn new_dcs(&self, params: DcsParams) -> PluginResult<Box<dyn Dcs>> {
        let b = answer::<FfiDcsBox, FfiDcsBox>((self.module.new_dcs())(params.into(), log_sink()))?;
        Ok(Box::new(LoadedDcs(b)))
    }

    pub fn new_replica(&self, params: PluginParams) -> PluginResult<Box<dyn ReplicaMethod>> {
        let b = answer::<FfiReplicaBox, FfiReplicaBox>((self.module.new_replica())(params.into(), log_sink()))?;
        Ok(Box::new(LoadedReplica(b)))
    }

    pub fn new_callback(&self, params: PluginParams) -> PluginResult<Box<dyn Callback>> {
        let b = answer::<FfiCallbackBox, FfiCallbackBox>((self.module.new_callback())(params.into(), log_sink()))?;
        Ok(Box::new(LoadedCallback(b)))
    }

    pub fn new_mpp(&self, params: PluginParams) -> PluginResult<Box<dyn Mpp>> {
        let b = answer::<FfiMppBox, FfiMppBox>((self.module.new_mpp())(params.into(), log_sink()))?;
        Ok(Box::new(LoadedMpp(b)))
    }
}

fn ropt<'a>(o: Option<&'a str>) -> ROption<RStr<'a>> {
    match o {
        Some(s) => ROption::RSome(RStr::from_str(s)),
        None => ROption::RNone,
    }
}

fn rleader(l: Option<&LeaderKey>) -> ROption<FfiLeaderKey> {
    match l {
        Some(l) => ROption::RSome(l.clone().into()),
        None => ROption::RNone,
    }
}

struct LoadedDcs(FfiDcsBox);

impl Dcs for LoadedDcs {
    fn get_cluster(&self) -> PluginResult<DcsSnapshot> {
        answer(self.0.get_cluster())
    }
    fn attempt_to_acquire_leader(&self) -> PluginResult<bool> {
        answer(self.0.attempt_to_acquire_leader())
    }
    fn update_leader(&self, leader: Option<&LeaderKey>) -> PluginResult<bool> {
        answer(self.0.update_leader(rleader(leader)))
    }
    fn take_leader(&self) -> PluginResult<bool> {
        answer(self.0.take_leader())
    }
    fn delete_leader(&self, leader: Option<&LeaderKey>) -> PluginResult<bool> {
        answer(self.0.delete_leader(rleader(leader)))
    }
    fn initialize(&self, create_new: bool, sysid: &str) -> PluginResult<bool> {
        answer(self.0.initialize(create_new, RStr::from_str(sysid)))
    }
    fn cancel_initialization(&self) -> PluginResult<bool> {
        answer(self.0.cancel_initialization())
    }
    fn touch_member(&self, data: &str) -> PluginResult<bool> {
        answer(self.0.touch_member(RStr::from_str(data)))
    }
    fn set_config_value(&self, value: &str, version: Option<&str>) -> PluginResult<bool> {
        answer(self.0.set_config_value(RStr::from_str(value), ropt(version)))
    }
    fn set_failover_value(&self, value: &str, version: Option<&str>) -> PluginResult<bool> {
        answer(self.0.set_failover_value(RStr::from_str(value), ropt(version)))
    }
    fn set_sync_state_value(&self, value: &str, version: Option<&str>) -> PluginResult<Option<String>> {
        answer(self.0.set_sync_state_value(RStr::from_str(value), ropt(version)))
    }
    fn delete_sync_state(&self, version: Option<&str>) -> PluginResult<bool> {
        answer(self.0.delete_sync_state(ropt(version)))
    }
    fn set_history_value(&self, value: &str) -> PluginResult<bool> {
        answer(self.0.set_history_value(RStr::from_str(value)))
    }
    fn write_status(&self, value: &str) -> PluginResult<bool> {
        answer(self.0.write_status(RStr::from_str(value)))
    }
    fn write_failsafe(&self, value: &str) -> PluginResult<bool> {
        answer(self.0.write_failsafe(RStr::from_str(value)))
    }
    fn delete_cluster(&self) -> PluginResult<bool> {
        answer(self.0.delete_cluster())
    }
    fn set_timing(&self, timing: DcsTiming) -> PluginResult<()> {
        answer(self.0.set_timing(timing.into()))
    }
    fn watch(&self, leader_version: Option<&str>, timeout: Duration) -> PluginResult<bool> {
        answer(self.0.watch(ropt(leader_version), timeout.as_millis() as u64))
    }
    fn get_mpp_groups(&self) -> PluginResult<BTreeMap<i32, DcsSnapshot>> {
        match self.0.get_mpp_groups() {
            RResult::ROk(groups) => Ok(groups_from_ffi(groups)),
            RResult::RErr(e) => Err(tame(e.into())),
        }
    }
}

struct LoadedReplica(FfiReplicaBox);

impl ReplicaMethod for LoadedReplica {
    fn can_work_without_leader(&self) -> bool {
        self.0.can_work_without_leader()
    }
    fn create_replica(&self, request: &ReplicaRequest) -> PluginResult<()> {
        answer(self.0.create_replica(request.clone().into()))
    }
    fn cancel(&self) {
        self.0.cancel()
    }
    fn archive_commands(&self) -> PluginResult<ArchiveCommands> {
        answer(self.0.archive_commands())
    }
}

struct LoadedCallback(FfiCallbackBox);

impl Callback for LoadedCallback {
    fn on_event(&self, event: &CallbackEvent) -> PluginResult<()> {
        answer(self.0.on_event(event.clone().into()))
    }
}

struct LoadedMpp(FfiMppBox);

impl Mpp for LoadedMpp {
    fn group(&self) -> i32 {
        self.0.group()
    }
    fn coordinator_group(&self) -> i32 {
        self.0.coordinator_group()
    }
    fn set_local(&self, local: &MppLocal) -> PluginResult<()> {
        answer(self.0.set_local(local.clone().into()))
    }
    fn adjust_parameters(&self, parameters_json: &str) -> PluginResult<String> {
        answer(self.0.adjust_parameters(RStr::from_str(parameters_json)))
    }
    fn bootstrap(&self) -> PluginResult<()> {
        answer(self.0.bootstrap())
    }
    fn sync_meta_data(&self, clusters: &[MppCluster]) -> PluginResult<()> {
        answer(self.0.sync_meta_data(mpp_clusters(clusters)))
    }
    fn handle_event(&self, clusters: &[MppCluster], event_json: &str) -> PluginResult<()> {
        answer(self.0.handle_event(mpp_clusters(clusters), RStr::from_str(event_json)))
    }
    fn on_demote(&self) {
        self.0.on_demote()
    }
    fn schedule_cache_rebuild(&self) {
        self.0.schedule_cache_rebuild()
    }
    fn ignore_replication_slot(&self, slot: &MppSlot, is_primary: bool) -> bool {
        self.0.ignore_replication_slot(slot.clone().into(), is_primary)
    }
}

fn mpp_clusters(clusters: &[MppCluster]) -> abi_stable::std_types::RVec<FfiMppCluster> {
    clusters.iter().cloned().map(FfiMppCluster::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_text_is_one_bounded_line() {
        assert_eq!(
            one_line("etcd is down: connection refused\tretrying"),
            "etcd is down: connection refused\tretrying"
        );
        assert_eq!(
            one_line("failed\n2026-01-01 00:00:00,000 ERROR: forged\r\n\u{1b}[31mred"),
            "failed\\n2026-01-01 00:00:00,000 ERROR: forged\\r\\n\\u{1b}[31mred"
        );
        assert_eq!(one_line("a\u{202e}b\u{0}"), "a\\u{202e}b\\u{0}");
        let huge = format!("{}é", "x".repeat(MESSAGE_LIMIT * 128));
        let cut = one_line(&huge);
        assert!(cut.len() < MESSAGE_LIMIT + 40, "{}", cut.len());
        assert!(
            cut.ends_with(&format!(" [... {} more bytes]", huge.len() - MESSAGE_LIMIT)),
            "{}",
            &cut[MESSAGE_LIMIT - 10..]
        );
        // Multi-byte characters are never split.
        let wide = "é".repeat(MESSAGE_LIMIT);
        assert!(one_line(&wide).starts_with("éé"));
    }

    #[test]
    fn an_error_from_a_plugin_is_tamed() {
        let empty: PluginResult<bool> =
            answer::<bool, bool>(RResult::RErr(PluginError::new(ErrorKind::Other, " ").into()));
        assert_eq!(empty.unwrap_err().message, "(the plugin gave no message)");
        let big: PluginResult<bool> =
            answer::<bool, bool>(RResult::RErr(PluginError::dcs(format!("down\n{}", "x".repeat(1 << 20))).into()));
        let e = big.unwrap_err();
        assert_eq!(e.kind, ErrorKind::DcsUnavailable);
        assert!(e.message.starts_with("down\\nxxx") && e.message.len() < MESSAGE_LIMIT + 40, "{}", e.message.len());
        let ok: PluginResult<bool> = answer::<bool, bool>(RResult::ROk(true));
        assert_eq!(ok, Ok(true));
    }
}
