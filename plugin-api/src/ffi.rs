//! The `abi_stable` mirror of [`crate::contract`].
//!
//! Rules for changing this file (see docs/ARCHITECTURE.md):
//! - methods and root-module fields are only ever appended after the
//!   `#[sabi(last_prefix_field)]` one, with a default where possible;
//! - plain `#[repr(C)]` structs never change once released: add a new
//!   method taking a new struct instead;
//! - enumerations cross as `u8` codes, so that a value from a newer plugin
//!   can never be undefined behaviour in an older host.

#![allow(non_camel_case_types, non_local_definitions)]

use std::collections::BTreeMap;
use std::time::Duration;

use abi_stable::{
    library::RootModule,
    package_version_strings, sabi_trait,
    sabi_types::VersionStrings,
    std_types::{RBox, RNone, ROption, RResult, RSome, RStr, RString, RVec, Tuple2},
    StableAbi,
};

use crate::contract::*;

// ---------------------------------------------------------------------------
// Common types
// ---------------------------------------------------------------------------

#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct FfiPluginInfo {
    pub kind: u8,
    pub name: RString,
    pub api_version: u32,
    pub plugin_version: RString,
}

impl FfiPluginInfo {
    pub fn new(kind: PluginKind, name: &str, api_version: u32, plugin_version: &str) -> Self {
        Self { kind: kind.code(), name: name.into(), api_version, plugin_version: plugin_version.into() }
    }

    /// Convert, or say why the value makes no sense (an unknown kind code).
    pub fn to_info(&self) -> Result<PluginInfo, String> {
        let kind = PluginKind::from_code(self.kind).ok_or_else(|| format!("unknown plugin kind code {}", self.kind))?;
        Ok(PluginInfo {
            kind,
            name: self.name.to_string(),
            api_version: self.api_version,
            plugin_version: self.plugin_version.to_string(),
        })
    }
}

#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct FfiError {
    pub kind: u8,
    pub message: RString,
}

impl From<PluginError> for FfiError {
    fn from(e: PluginError) -> Self {
        Self { kind: e.kind.code(), message: e.message.into() }
    }
}

impl From<FfiError> for PluginError {
    fn from(e: FfiError) -> Self {
        PluginError::new(ErrorKind::from_code(e.kind), e.message.into_string())
    }
}

pub type FfiResult<T> = RResult<T, FfiError>;

pub(crate) fn to_ffi<T, U: From<T>>(r: PluginResult<T>) -> FfiResult<U> {
    match r {
        Ok(v) => RResult::ROk(U::from(v)),
        Err(e) => RResult::RErr(e.into()),
    }
}

pub(crate) fn from_ffi<T, U: From<T>>(r: FfiResult<T>) -> PluginResult<U> {
    match r {
        RResult::ROk(v) => Ok(U::from(v)),
        RResult::RErr(e) => Err(e.into()),
    }
}

/// Log levels crossing the boundary.
pub mod level {
    pub const ERROR: u8 = 1;
    pub const WARN: u8 = 2;
    pub const INFO: u8 = 3;
    pub const DEBUG: u8 = 4;
    pub const TRACE: u8 = 5;
}

/// Where a plugin sends its log events: a function of the host's, called
/// with the plugin's name so the host's log says who spoke.
#[repr(C)]
#[derive(StableAbi, Clone, Copy)]
pub struct LogSink {
    pub emit: extern "C" fn(level: u8, plugin: RStr<'_>, target: RStr<'_>, message: RStr<'_>),
    /// The most verbose level the host wants (one of [`level`]).
    pub max_level: u8,
}

#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct FfiDcsTiming {
    pub ttl_ms: u64,
    pub loop_wait_ms: u64,
    pub retry_timeout_ms: u64,
}

impl From<DcsTiming> for FfiDcsTiming {
    fn from(t: DcsTiming) -> Self {
        Self {
            ttl_ms: t.ttl.as_millis() as u64,
            loop_wait_ms: t.loop_wait.as_millis() as u64,
            retry_timeout_ms: t.retry_timeout.as_millis() as u64,
        }
    }
}

impl From<FfiDcsTiming> for DcsTiming {
    fn from(t: FfiDcsTiming) -> Self {
        Self {
            ttl: Duration::from_millis(t.ttl_ms),
            loop_wait: Duration::from_millis(t.loop_wait_ms),
            retry_timeout: Duration::from_millis(t.retry_timeout_ms),
        }
    }
}

#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct FfiDcsParams {
    pub scope: RString,
    pub namespace: RString,
    pub name: RString,
    pub group: ROption<i32>,
    pub timing: FfiDcsTiming,
    pub section_json: RString,
}

impl From<DcsParams> for FfiDcsParams {
    fn from(p: DcsParams) -> Self {
        Self {
            scope: p.scope.into(),
            namespace: p.namespace.into(),
            name: p.name.into(),
            group: p.group.into(),
            timing: p.timing.into(),
            section_json: p.section_json.into(),
        }
    }
}

impl From<FfiDcsParams> for DcsParams {
    fn from(p: FfiDcsParams) -> Self {
        Self {
            scope: p.scope.into(),
            namespace: p.namespace.into(),
            name: p.name.into(),
            group: p.group.into(),
            timing: p.timing.into(),
            section_json: p.section_json.into(),
        }
    }
}

#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct FfiPluginParams {
    pub scope: RString,
    pub name: RString,
    pub config_json: RString,
}

impl From<PluginParams> for FfiPluginParams {
    fn from(p: PluginParams) -> Self {
        Self { scope: p.scope.into(), name: p.name.into(), config_json: p.config_json.into() }
    }
}

impl From<FfiPluginParams> for PluginParams {
    fn from(p: FfiPluginParams) -> Self {
        Self { scope: p.scope.into(), name: p.name.into(), config_json: p.config_json.into() }
    }
}

// ---------------------------------------------------------------------------
// DCS
// ---------------------------------------------------------------------------

#[repr(C)]
#[derive(StableAbi, Clone, Debug, Default)]
pub struct FfiVersioned {
    pub value: RString,
    pub version: RString,
}

impl From<VersionedValue> for FfiVersioned {
    fn from(v: VersionedValue) -> Self {
        Self { value: v.value.into(), version: v.version.into() }
    }
}

impl From<FfiVersioned> for VersionedValue {
    fn from(v: FfiVersioned) -> Self {
        Self { value: v.value.into(), version: v.version.into() }
    }
}

#[repr(C)]
#[derive(StableAbi, Clone, Debug, Default)]
pub struct FfiLeaderKey {
    pub name: RString,
    pub version: RString,
    pub session: RString,
}

impl From<LeaderKey> for FfiLeaderKey {
    fn from(v: LeaderKey) -> Self {
        Self { name: v.name.into(), version: v.version.into(), session: v.session.into() }
    }
}

impl From<FfiLeaderKey> for LeaderKey {
    fn from(v: FfiLeaderKey) -> Self {
        Self { name: v.name.into(), version: v.version.into(), session: v.session.into() }
    }
}

#[repr(C)]
#[derive(StableAbi, Clone, Debug, Default)]
pub struct FfiMemberKey {
    pub name: RString,
    pub value: RString,
    pub version: RString,
    pub session: RString,
}

impl From<MemberKey> for FfiMemberKey {
    fn from(v: MemberKey) -> Self {
        Self { name: v.name.into(), value: v.value.into(), version: v.version.into(), session: v.session.into() }
    }
}

impl From<FfiMemberKey> for MemberKey {
    fn from(v: FfiMemberKey) -> Self {
        Self { name: v.name.into(), value: v.value.into(), version: v.version.into(), session: v.session.into() }
    }
}

#[repr(C)]
#[derive(StableAbi, Clone, Debug, Default)]
pub struct FfiSnapshot {
    pub initialize: ROption<RString>,
    pub config: ROption<FfiVersioned>,
    pub leader: ROption<FfiLeaderKey>,
    pub members: RVec<FfiMemberKey>,
    pub failover: ROption<FfiVersioned>,
    pub sync: ROption<FfiVersioned>,
    pub history: ROption<FfiVersioned>,
    pub status: ROption<RString>,
    pub failsafe: ROption<RString>,
    pub leader_optime: ROption<RString>,
}

fn opt_in<T, U: From<T>>(o: Option<T>) -> ROption<U> {
    match o {
        Some(v) => RSome(U::from(v)),
        None => RNone,
    }
}

fn opt_out<T, U: From<T>>(o: ROption<T>) -> Option<U> {
    o.into_option().map(U::from)
}

impl From<DcsSnapshot> for FfiSnapshot {
    fn from(s: DcsSnapshot) -> Self {
        Self {
            initialize: opt_in(s.initialize),
            config: opt_in(s.config),
            leader: opt_in(s.leader),
            members: s.members.into_iter().map(FfiMemberKey::from).collect(),
            failover: opt_in(s.failover),
            sync: opt_in(s.sync),
            history: opt_in(s.history),
            status: opt_in(s.status),
            failsafe: opt_in(s.failsafe),
            leader_optime: opt_in(s.leader_optime),
        }
    }
}

impl From<FfiSnapshot> for DcsSnapshot {
    fn from(s: FfiSnapshot) -> Self {
        Self {
            initialize: opt_out(s.initialize),
            config: opt_out(s.config),
            leader: opt_out(s.leader),
            members: s.members.into_iter().map(MemberKey::from).collect(),
            failover: opt_out(s.failover),
            sync: opt_out(s.sync),
            history: opt_out(s.history),
            status: opt_out(s.status),
            failsafe: opt_out(s.failsafe),
            leader_optime: opt_out(s.leader_optime),
        }
    }
}

/// One Citus group's snapshot ([`Dcs::get_mpp_groups`]; never changes).
#[repr(C)]
#[derive(StableAbi, Clone, Debug, Default)]
pub struct FfiGroupSnapshot {
    pub group: i32,
    pub snapshot: FfiSnapshot,
}

/// Every group's snapshot as it crosses the boundary (sorted by group).
pub(crate) fn groups_to_ffi(groups: BTreeMap<i32, DcsSnapshot>) -> RVec<FfiGroupSnapshot> {
    groups.into_iter().map(|(group, s)| FfiGroupSnapshot { group, snapshot: s.into() }).collect()
}

/// Back to the map; a group a plugin sent twice keeps its last snapshot.
pub(crate) fn groups_from_ffi(groups: RVec<FfiGroupSnapshot>) -> BTreeMap<i32, DcsSnapshot> {
    groups.into_iter().map(|g| (g.group, g.snapshot.into())).collect()
}

/// Wrapper so that `ROption<RString>` can be produced by [`to_ffi`].
#[repr(transparent)]
#[derive(StableAbi, Clone, Debug)]
pub struct FfiOptString(pub ROption<RString>);

impl From<Option<String>> for FfiOptString {
    fn from(o: Option<String>) -> Self {
        Self(opt_in(o))
    }
}

impl From<FfiOptString> for Option<String> {
    fn from(o: FfiOptString) -> Self {
        opt_out(o.0)
    }
}

/// Unit result payload (abi_stable has no `()` in `RResult` that derives all we need).
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, Default)]
pub struct FfiUnit {
    _private: u8,
}

impl From<()> for FfiUnit {
    fn from(_: ()) -> Self {
        Self::default()
    }
}

impl From<FfiUnit> for () {
    fn from(_: FfiUnit) -> Self {}
}

/// The DCS contract as an FFI-safe trait object.
#[sabi_trait]
pub trait FfiDcs: Send + Sync {
    fn get_cluster(&self) -> FfiResult<FfiSnapshot>;
    fn attempt_to_acquire_leader(&self) -> FfiResult<bool>;
    fn update_leader(&self, leader: ROption<FfiLeaderKey>) -> FfiResult<bool>;
    fn take_leader(&self) -> FfiResult<bool>;
    fn delete_leader(&self, leader: ROption<FfiLeaderKey>) -> FfiResult<bool>;
    fn initialize(&self, create_new: bool, sysid: RStr<'_>) -> FfiResult<bool>;
    fn cancel_initialization(&self) -> FfiResult<bool>;
    fn touch_member(&self, data: RStr<'_>) -> FfiResult<bool>;
    fn set_config_value(&self, value: RStr<'_>, version: ROption<RStr<'_>>) -> FfiResult<bool>;
    fn set_failover_value(&self, value: RStr<'_>, version: ROption<RStr<'_>>) -> FfiResult<bool>;
    fn set_sync_state_value(&self, value: RStr<'_>, version: ROption<RStr<'_>>) -> FfiResult<FfiOptString>;
    fn delete_sync_state(&self, version: ROption<RStr<'_>>) -> FfiResult<bool>;
    fn set_history_value(&self, value: RStr<'_>) -> FfiResult<bool>;
    fn write_status(&self, value: RStr<'_>) -> FfiResult<bool>;
    fn write_failsafe(&self, value: RStr<'_>) -> FfiResult<bool>;
    fn delete_cluster(&self) -> FfiResult<bool>;
    fn set_timing(&self, timing: FfiDcsTiming) -> FfiResult<FfiUnit>;
    #[sabi(last_prefix_field)]
    fn watch(&self, leader_version: ROption<RStr<'_>>, timeout_ms: u64) -> FfiResult<bool>;
    /// Appended after the first release (see `FfiReplica::archive_commands`
    /// for what that means for older plugins and hosts): every Citus group
    /// under the scope, sorted by group number. The default body answers
    /// with an error should a vtable without the entry ever be reached.
    fn get_mpp_groups(&self) -> FfiResult<RVec<FfiGroupSnapshot>> {
        RResult::RErr(FfiError {
            kind: ErrorKind::Other.code(),
            message: "the DCS plugin was built before get_mpp_groups existed; rebuild it".into(),
        })
    }
}

pub type FfiDcsBox = FfiDcs_TO<'static, RBox<()>>;

// ---------------------------------------------------------------------------
// Replica creation
// ---------------------------------------------------------------------------

#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct FfiReplicaRequest {
    pub scope: RString,
    pub name: RString,
    pub role: RString,
    pub data_dir: RString,
    pub bin_dir: RString,
    pub connstring: ROption<RString>,
    pub env: RVec<Tuple2<RString, RString>>,
    pub cwd: RString,
}

impl From<ReplicaRequest> for FfiReplicaRequest {
    fn from(r: ReplicaRequest) -> Self {
        Self {
            scope: r.scope.into(),
            name: r.name.into(),
            role: r.role.into(),
            data_dir: r.data_dir.into(),
            bin_dir: r.bin_dir.into(),
            connstring: opt_in(r.connstring),
            env: r.env.into_iter().map(|(k, v)| Tuple2(k.into(), v.into())).collect(),
            cwd: r.cwd.into(),
        }
    }
}

impl From<FfiReplicaRequest> for ReplicaRequest {
    fn from(r: FfiReplicaRequest) -> Self {
        Self {
            scope: r.scope.into(),
            name: r.name.into(),
            role: r.role.into(),
            data_dir: r.data_dir.into(),
            bin_dir: r.bin_dir.into(),
            connstring: opt_out(r.connstring),
            env: r.env.into_iter().map(|Tuple2(k, v)| (k.into(), v.into())).collect(),
            cwd: r.cwd.into(),
        }
    }
}

/// [`ArchiveCommands`] across the boundary (appended with
/// `FfiReplica::archive_commands`; never changes).
#[repr(C)]
#[derive(StableAbi, Clone, Debug, Default)]
pub struct FfiArchiveCommands {
    pub restore_command: ROption<RString>,
    pub archive_cleanup_command: ROption<RString>,
}

impl From<ArchiveCommands> for FfiArchiveCommands {
    fn from(c: ArchiveCommands) -> Self {
        Self { restore_command: opt_in(c.restore_command), archive_cleanup_command: opt_in(c.archive_cleanup_command) }
    }
}

impl From<FfiArchiveCommands> for ArchiveCommands {
    fn from(c: FfiArchiveCommands) -> Self {
        Self {
            restore_command: opt_out(c.restore_command),
            archive_cleanup_command: opt_out(c.archive_cleanup_command),
        }
    }
}

#[sabi_trait]
pub trait FfiReplica: Send + Sync {
    fn can_work_without_leader(&self) -> bool;
    fn create_replica(&self, request: FfiReplicaRequest) -> FfiResult<FfiUnit>;
    #[sabi(last_prefix_field)]
    fn cancel(&self);
    /// Appended after the first release. abi_stable lets a host load
    /// plugins built against the same or a newer plugin-api: a host built
    /// before this method loads a plugin that has it (and never calls it),
    /// while a plugin built before it is refused by the layout check with
    /// "rebuild the plugin" (abi_stable's rule: the library may have more
    /// prefix fields than the loader, never fewer). The default body
    /// (abi_stable's `missing_field(option)`) answers "no commands" should
    /// a vtable without the entry ever be reached.
    fn archive_commands(&self) -> FfiResult<FfiArchiveCommands> {
        RResult::ROk(FfiArchiveCommands::default())
    }
}

pub type FfiReplicaBox = FfiReplica_TO<'static, RBox<()>>;

// ---------------------------------------------------------------------------
// Callbacks
// ---------------------------------------------------------------------------

#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct FfiCallbackEvent {
    pub action: RString,
    pub role: RString,
    pub scope: RString,
    pub name: RString,
}

impl From<CallbackEvent> for FfiCallbackEvent {
    fn from(e: CallbackEvent) -> Self {
        Self { action: e.action.into(), role: e.role.into(), scope: e.scope.into(), name: e.name.into() }
    }
}

impl From<FfiCallbackEvent> for CallbackEvent {
    fn from(e: FfiCallbackEvent) -> Self {
        Self { action: e.action.into(), role: e.role.into(), scope: e.scope.into(), name: e.name.into() }
    }
}

#[sabi_trait]
pub trait FfiCallback: Send + Sync {
    #[sabi(last_prefix_field)]
    fn on_event(&self, event: FfiCallbackEvent) -> FfiResult<FfiUnit>;
}

pub type FfiCallbackBox = FfiCallback_TO<'static, RBox<()>>;

// ---------------------------------------------------------------------------
// MPP
// ---------------------------------------------------------------------------

#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct FfiMppLocal {
    pub conn: RVec<Tuple2<RString, RString>>,
    pub database: RString,
    pub conn_url: RString,
}

impl From<MppLocal> for FfiMppLocal {
    fn from(l: MppLocal) -> Self {
        Self {
            conn: l.conn.into_iter().map(|(k, v)| Tuple2(k.into(), v.into())).collect(),
            database: l.database.into(),
            conn_url: l.conn_url.into(),
        }
    }
}

impl From<FfiMppLocal> for MppLocal {
    fn from(l: FfiMppLocal) -> Self {
        Self {
            conn: l.conn.into_iter().map(|Tuple2(k, v)| (k.into(), v.into())).collect(),
            database: l.database.into(),
            conn_url: l.conn_url.into(),
        }
    }
}

#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct FfiMppMember {
    pub name: RString,
    pub conn_url: ROption<RString>,
    pub role: ROption<RString>,
    pub state: ROption<RString>,
    pub noloadbalance: bool,
}

impl From<MppMember> for FfiMppMember {
    fn from(m: MppMember) -> Self {
        Self {
            name: m.name.into(),
            conn_url: opt_in(m.conn_url),
            role: opt_in(m.role),
            state: opt_in(m.state),
            noloadbalance: m.noloadbalance,
        }
    }
}

impl From<FfiMppMember> for MppMember {
    fn from(m: FfiMppMember) -> Self {
        Self {
            name: m.name.into(),
            conn_url: opt_out(m.conn_url),
            role: opt_out(m.role),
            state: opt_out(m.state),
            noloadbalance: m.noloadbalance,
        }
    }
}

#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct FfiMppCluster {
    pub group: i32,
    pub leader: ROption<RString>,
    pub members: RVec<FfiMppMember>,
}

impl From<MppCluster> for FfiMppCluster {
    fn from(c: MppCluster) -> Self {
        Self {
            group: c.group,
            leader: opt_in(c.leader),
            members: c.members.into_iter().map(FfiMppMember::from).collect(),
        }
    }
}

impl From<FfiMppCluster> for MppCluster {
    fn from(c: FfiMppCluster) -> Self {
        Self {
            group: c.group,
            leader: opt_out(c.leader),
            members: c.members.into_iter().map(MppMember::from).collect(),
        }
    }
}

#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct FfiMppSlot {
    pub name: RString,
    pub slot_type: RString,
    pub database: RString,
    pub plugin: RString,
}

impl From<MppSlot> for FfiMppSlot {
    fn from(s: MppSlot) -> Self {
        Self {
            name: s.name.into(),
            slot_type: s.slot_type.into(),
            database: s.database.into(),
            plugin: s.plugin.into(),
        }
    }
}

impl From<FfiMppSlot> for MppSlot {
    fn from(s: FfiMppSlot) -> Self {
        Self {
            name: s.name.into(),
            slot_type: s.slot_type.into(),
            database: s.database.into(),
            plugin: s.plugin.into(),
        }
    }
}

/// The mirror of [`Mpp`]; see there for what each method promises.
#[sabi_trait]
pub trait FfiMpp: Send + Sync {
    fn group(&self) -> i32;
    fn coordinator_group(&self) -> i32;
    fn set_local(&self, local: FfiMppLocal) -> FfiResult<FfiUnit>;
    fn adjust_parameters(&self, parameters_json: RStr<'_>) -> FfiResult<RString>;
    fn bootstrap(&self) -> FfiResult<FfiUnit>;
    fn sync_meta_data(&self, clusters: RVec<FfiMppCluster>) -> FfiResult<FfiUnit>;
    fn handle_event(&self, clusters: RVec<FfiMppCluster>, event_json: RStr<'_>) -> FfiResult<FfiUnit>;
    fn on_demote(&self);
    fn schedule_cache_rebuild(&self);
    #[sabi(last_prefix_field)]
    fn ignore_replication_slot(&self, slot: FfiMppSlot, is_primary: bool) -> bool;
}

pub type FfiMppBox = FfiMpp_TO<'static, RBox<()>>;

// ---------------------------------------------------------------------------
// The root module
// ---------------------------------------------------------------------------

/// What every plugin library exports. A plugin fills in the constructor for
/// its own kind; the others answer with an error naming the real kind.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModRef)))]
#[sabi(missing_field(option))]
pub struct PluginMod {
    pub info: extern "C" fn() -> FfiPluginInfo,
    pub new_dcs: extern "C" fn(FfiDcsParams, LogSink) -> FfiResult<FfiDcsBox>,
    pub new_replica: extern "C" fn(FfiPluginParams, LogSink) -> FfiResult<FfiReplicaBox>,
    pub new_callback: extern "C" fn(FfiPluginParams, LogSink) -> FfiResult<FfiCallbackBox>,
    #[sabi(last_prefix_field)]
    pub new_mpp: extern "C" fn(FfiPluginParams, LogSink) -> FfiResult<FfiMppBox>,
}

impl RootModule for PluginModRef {
    abi_stable::declare_root_module_statics! {PluginModRef}
    const BASE_NAME: &'static str = "palisade_plugin";
    const NAME: &'static str = "palisade_plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}
