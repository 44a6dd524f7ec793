//! The plugin side: what every plugin uses so that all plugins look alike.
//!
//! - [`export_plugin!`](crate::export_plugin) exports the root module;
//! - every call into the plugin runs inside [`guard`], so a panic becomes a
//!   [`ErrorKind::Panic`] error instead of aborting the daemon;
//! - the plugin's `tracing` events (it has its own copy of `tracing`'s
//!   globals) are forwarded to the host's log with the plugin's name;
//! - with the `runtime` feature, [`runtime`] gives a private tokio runtime to
//!   plugins whose client libraries are async;
//! - [`pycompat`] is the Python behaviour Palisade mirrors (the host's
//!   `palisade-pycompat` crate, re-exported so that plugins never carry a
//!   copy): [`shlex`] splits command lines as Patroni does, `pycompat::py`
//!   gives Python's `str()` and truthiness of configuration values;
//! - [`settings`] words a configuration section's errors alike in every
//!   plugin (the key path, the kind of value found); with the `process`
//!   feature, [`process`] runs one cancellable external command at a time
//!   and [`datadir`] checks, empties and creates a data directory, for the
//!   replica-method plugins;
//! - [`dcs`] is what every DCS plugin shares: Patroni's key layout and the
//!   assembly of one read of the store into a snapshot;
//! - with the `keys` feature, `keys` opens password-protected PEM private
//!   keys (the `palisade-keys` crate, which the host's TLS code uses too,
//!   so there is one copy).
//!
//! These helpers are for plugins only: the host never enables `runtime` or
//! `process`, and none of them touches a type of the ABI.

#[cfg(feature = "process")]
pub mod datadir;
pub mod dcs;
#[cfg(feature = "keys")]
pub use palisade_keys as keys;
#[cfg(feature = "tls")]
pub use palisade_tls as tls;
#[cfg(feature = "process")]
pub mod process;
pub use palisade_pycompat as pycompat;
pub use palisade_pycompat::shlex;
pub mod settings;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;
use std::time::Duration;

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{ROption, RResult, RStr, RString, RVec};

use crate::contract::*;
use crate::ffi::*;

/// Run `f`, turning a panic into an error.
pub fn guard<T>(f: impl FnOnce() -> PluginResult<T>) -> PluginResult<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let message = if let Some(s) = payload.downcast_ref::<&str>() {
                (*s).to_string()
            } else if let Some(s) = payload.downcast_ref::<String>() {
                s.clone()
            } else {
                "panic with a non-string payload".to_string()
            };
            Err(PluginError::new(ErrorKind::Panic, message))
        }
    }
}

/// Like [`guard`] for calls that cannot report an error: a panic is logged.
fn guard_unit(f: impl FnOnce()) {
    if let Err(e) = guard(|| {
        f();
        Ok(())
    }) {
        tracing::error!("{e}");
    }
}

// ---------------------------------------------------------------------------
// Log forwarding
// ---------------------------------------------------------------------------

struct Forwarder {
    sink: LogSink,
    plugin: &'static str,
}

struct MessageVisitor {
    message: String,
    fields: String,
}

impl tracing::field::Visit for MessageVisitor {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.fields.push_str(&format!(" {}={}", field.name(), value));
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message.push_str(&format!("{value:?}"));
        } else {
            self.fields.push_str(&format!(" {}={:?}", field.name(), value));
        }
    }
}

fn level_code(level: &tracing::Level) -> u8 {
    match *level {
        tracing::Level::ERROR => level::ERROR,
        tracing::Level::WARN => level::WARN,
        tracing::Level::INFO => level::INFO,
        tracing::Level::DEBUG => level::DEBUG,
        tracing::Level::TRACE => level::TRACE,
    }
}

impl tracing::Subscriber for Forwarder {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        level_code(metadata.level()) <= self.sink.max_level
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(match self.sink.max_level {
            0 => tracing::level_filters::LevelFilter::OFF,
            level::ERROR => tracing::level_filters::LevelFilter::ERROR,
            level::WARN => tracing::level_filters::LevelFilter::WARN,
            level::INFO => tracing::level_filters::LevelFilter::INFO,
            level::DEBUG => tracing::level_filters::LevelFilter::DEBUG,
            _ => tracing::level_filters::LevelFilter::TRACE,
        })
    }

    fn new_span(&self, _span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _span: &tracing::span::Id, _values: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _span: &tracing::span::Id, _follows: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let mut visitor = MessageVisitor { message: String::new(), fields: String::new() };
        event.record(&mut visitor);
        let text = format!("{}{}", visitor.message, visitor.fields);
        let metadata = event.metadata();
        (self.sink.emit)(
            level_code(metadata.level()),
            RStr::from_str(self.plugin),
            RStr::from_str(metadata.target()),
            RStr::from_str(&text),
        );
    }

    fn enter(&self, _span: &tracing::span::Id) {}

    fn exit(&self, _span: &tracing::span::Id) {}
}

static LOGGER: OnceLock<()> = OnceLock::new();

/// Send this library's `tracing` events, and its panic messages, to the
/// host. Called by the generated constructors; the first sink wins.
pub fn install_log_sink(sink: LogSink, plugin: &str) {
    LOGGER.get_or_init(|| {
        let plugin: &'static str = Box::leak(plugin.to_string().into_boxed_str());
        let _ = tracing::subscriber::set_global_default(Forwarder { sink, plugin });
        // This library has its own copy of std's panic hook: report panics
        // through the host's log instead of writing raw text to stderr.
        std::panic::set_hook(Box::new(move |info| {
            let location = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
            let payload = if let Some(s) = info.payload().downcast_ref::<&str>() {
                (*s).to_string()
            } else if let Some(s) = info.payload().downcast_ref::<String>() {
                s.clone()
            } else {
                String::from("non-string payload")
            };
            let text = format!("panic{location}: {payload}");
            (sink.emit)(level::ERROR, RStr::from_str(plugin), RStr::from_str("panic"), RStr::from_str(&text));
        }));
    });
}

// ---------------------------------------------------------------------------
// Private runtime
// ---------------------------------------------------------------------------

/// A tokio runtime owned by this plugin library (each library has its own
/// copy of this static): one thread, "plugin-rt", runs its spawned tasks
/// (connections, keep-alives, watches) and drives its IO and timers.
/// Calls from the host block on it through [`PluginRuntime::block_on`].
#[cfg(feature = "runtime")]
pub fn runtime() -> &'static PluginRuntime {
    static RT: OnceLock<PluginRuntime> = OnceLock::new();
    static DRIVER: std::sync::Once = std::sync::Once::new();
    let rt = RT.get_or_init(|| match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => PluginRuntime { rt },
        // Without a runtime the plugin cannot work at all; the panic is
        // caught by `guard` and reported as an error of the call.
        Err(e) => panic!("cannot start the plugin's tokio runtime: {e}"),
    });
    DRIVER.call_once(|| {
        // The thread holds the runtime's core for good: spawned tasks run
        // there, and callers' futures are woken by its IO and timers.
        let spawned = std::thread::Builder::new()
            .name("plugin-rt".into())
            .spawn(move || rt.rt.block_on(std::future::pending::<()>()));
        if let Err(e) = spawned {
            panic!("cannot start the plugin's runtime thread: {e}");
        }
    });
    rt
}

/// The plugin's runtime (see [`runtime`]). It dereferences to the tokio
/// runtime for `spawn`, `enter` and `handle`.
#[cfg(feature = "runtime")]
pub struct PluginRuntime {
    rt: tokio::runtime::Runtime,
}

#[cfg(feature = "runtime")]
impl PluginRuntime {
    /// Run `future` to completion on the calling thread, its IO and timers
    /// driven by the runtime's thread. The future is moved to the heap for
    /// the call (a client call's state can be tens of KiB), and the stack
    /// its polls went through is given back whenever it waits
    /// ([`crate::stack::release_unused`]): a watch waits for seconds.
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        let mut future = Box::pin(future);
        self.rt.block_on(std::future::poll_fn(move |cx| {
            let polled = std::future::Future::poll(future.as_mut(), cx);
            if polled.is_pending() {
                crate::stack::release_unused();
            }
            polled
        }))
    }
}

#[cfg(feature = "runtime")]
impl std::ops::Deref for PluginRuntime {
    type Target = tokio::runtime::Runtime;
    fn deref(&self) -> &tokio::runtime::Runtime {
        &self.rt
    }
}

// ---------------------------------------------------------------------------
// Adapters: plain trait -> FFI trait object, every call guarded
// ---------------------------------------------------------------------------

fn opt_str<'a>(o: &'a ROption<RStr<'a>>) -> Option<&'a str> {
    match o {
        ROption::RSome(s) => Some(s.as_str()),
        ROption::RNone => None,
    }
}

struct DcsAdapter<T>(T);

impl<T: Dcs> FfiDcs for DcsAdapter<T> {
    fn get_cluster(&self) -> FfiResult<FfiSnapshot> {
        to_ffi(guard(|| self.0.get_cluster()))
    }
    fn attempt_to_acquire_leader(&self) -> FfiResult<bool> {
        to_ffi(guard(|| self.0.attempt_to_acquire_leader()))
    }
    fn update_leader(&self, leader: ROption<FfiLeaderKey>) -> FfiResult<bool> {
        let leader: Option<LeaderKey> = leader.into_option().map(Into::into);
        to_ffi(guard(|| self.0.update_leader(leader.as_ref())))
    }
    fn take_leader(&self) -> FfiResult<bool> {
        to_ffi(guard(|| self.0.take_leader()))
    }
    fn delete_leader(&self, leader: ROption<FfiLeaderKey>) -> FfiResult<bool> {
        let leader: Option<LeaderKey> = leader.into_option().map(Into::into);
        to_ffi(guard(|| self.0.delete_leader(leader.as_ref())))
    }
    fn initialize(&self, create_new: bool, sysid: RStr<'_>) -> FfiResult<bool> {
        to_ffi(guard(|| self.0.initialize(create_new, sysid.as_str())))
    }
    fn cancel_initialization(&self) -> FfiResult<bool> {
        to_ffi(guard(|| self.0.cancel_initialization()))
    }
    fn touch_member(&self, data: RStr<'_>) -> FfiResult<bool> {
        to_ffi(guard(|| self.0.touch_member(data.as_str())))
    }
    fn set_config_value(&self, value: RStr<'_>, version: ROption<RStr<'_>>) -> FfiResult<bool> {
        to_ffi(guard(|| self.0.set_config_value(value.as_str(), opt_str(&version))))
    }
    fn set_failover_value(&self, value: RStr<'_>, version: ROption<RStr<'_>>) -> FfiResult<bool> {
        to_ffi(guard(|| self.0.set_failover_value(value.as_str(), opt_str(&version))))
    }
    fn set_sync_state_value(&self, value: RStr<'_>, version: ROption<RStr<'_>>) -> FfiResult<FfiOptString> {
        to_ffi(guard(|| self.0.set_sync_state_value(value.as_str(), opt_str(&version))))
    }
    fn delete_sync_state(&self, version: ROption<RStr<'_>>) -> FfiResult<bool> {
        to_ffi(guard(|| self.0.delete_sync_state(opt_str(&version))))
    }
    fn set_history_value(&self, value: RStr<'_>) -> FfiResult<bool> {
        to_ffi(guard(|| self.0.set_history_value(value.as_str())))
    }
    fn write_status(&self, value: RStr<'_>) -> FfiResult<bool> {
        to_ffi(guard(|| self.0.write_status(value.as_str())))
    }
    fn write_failsafe(&self, value: RStr<'_>) -> FfiResult<bool> {
        to_ffi(guard(|| self.0.write_failsafe(value.as_str())))
    }
    fn delete_cluster(&self) -> FfiResult<bool> {
        to_ffi(guard(|| self.0.delete_cluster()))
    }
    fn set_timing(&self, timing: FfiDcsTiming) -> FfiResult<FfiUnit> {
        to_ffi(guard(|| self.0.set_timing(timing.into())))
    }
    fn watch(&self, leader_version: ROption<RStr<'_>>, timeout_ms: u64) -> FfiResult<bool> {
        to_ffi(guard(|| self.0.watch(opt_str(&leader_version), Duration::from_millis(timeout_ms))))
    }
    fn get_mpp_groups(&self) -> FfiResult<RVec<FfiGroupSnapshot>> {
        match guard(|| self.0.get_mpp_groups()) {
            Ok(groups) => RResult::ROk(groups_to_ffi(groups)),
            Err(e) => RResult::RErr(e.into()),
        }
    }
}

struct ReplicaAdapter<T>(T);

impl<T: ReplicaMethod> FfiReplica for ReplicaAdapter<T> {
    fn can_work_without_leader(&self) -> bool {
        guard(|| Ok(self.0.can_work_without_leader())).unwrap_or(false)
    }
    fn create_replica(&self, request: FfiReplicaRequest) -> FfiResult<FfiUnit> {
        let request: ReplicaRequest = request.into();
        to_ffi(guard(|| self.0.create_replica(&request)))
    }
    fn cancel(&self) {
        guard_unit(|| self.0.cancel())
    }
    fn archive_commands(&self) -> FfiResult<FfiArchiveCommands> {
        to_ffi(guard(|| self.0.archive_commands()))
    }
}

struct CallbackAdapter<T>(T);

impl<T: Callback> FfiCallback for CallbackAdapter<T> {
    fn on_event(&self, event: FfiCallbackEvent) -> FfiResult<FfiUnit> {
        let event: CallbackEvent = event.into();
        to_ffi(guard(|| self.0.on_event(&event)))
    }
}

struct MppAdapter<T>(T);

impl<T: Mpp> FfiMpp for MppAdapter<T> {
    fn group(&self) -> i32 {
        guard(|| Ok(self.0.group())).unwrap_or(-1)
    }
    fn coordinator_group(&self) -> i32 {
        guard(|| Ok(self.0.coordinator_group())).unwrap_or(0)
    }
    fn set_local(&self, local: FfiMppLocal) -> FfiResult<FfiUnit> {
        let local: MppLocal = local.into();
        to_ffi(guard(|| self.0.set_local(&local)))
    }
    fn adjust_parameters(&self, parameters_json: RStr<'_>) -> FfiResult<RString> {
        to_ffi(guard(|| self.0.adjust_parameters(parameters_json.as_str())))
    }
    fn bootstrap(&self) -> FfiResult<FfiUnit> {
        to_ffi(guard(|| self.0.bootstrap()))
    }
    fn sync_meta_data(&self, clusters: RVec<FfiMppCluster>) -> FfiResult<FfiUnit> {
        let clusters: Vec<MppCluster> = clusters.into_iter().map(Into::into).collect();
        to_ffi(guard(|| self.0.sync_meta_data(&clusters)))
    }
    fn handle_event(&self, clusters: RVec<FfiMppCluster>, event_json: RStr<'_>) -> FfiResult<FfiUnit> {
        let clusters: Vec<MppCluster> = clusters.into_iter().map(Into::into).collect();
        to_ffi(guard(|| self.0.handle_event(&clusters, event_json.as_str())))
    }
    fn on_demote(&self) {
        guard_unit(|| self.0.on_demote())
    }
    fn schedule_cache_rebuild(&self) {
        guard_unit(|| self.0.schedule_cache_rebuild())
    }
    fn ignore_replication_slot(&self, slot: FfiMppSlot, is_primary: bool) -> bool {
        let slot: MppSlot = slot.into();
        // A plugin that fails here keeps the slot: dropping a slot the MPP
        // needs is the worse mistake.
        guard(|| Ok(self.0.ignore_replication_slot(&slot, is_primary))).unwrap_or(true)
    }
}

// ---------------------------------------------------------------------------
// Constructors used by `export_plugin!`
// ---------------------------------------------------------------------------

#[doc(hidden)]
pub fn new_dcs<T: Dcs + 'static>(
    params: FfiDcsParams,
    sink: LogSink,
    plugin: &str,
    ctor: fn(DcsParams) -> PluginResult<T>,
) -> FfiResult<FfiDcsBox> {
    install_log_sink(sink, plugin);
    let params: DcsParams = params.into();
    to_ffi(guard(|| ctor(params)).map(|d| WrapDcs(FfiDcs_TO::from_value(DcsAdapter(d), TD_Opaque))))
}

#[doc(hidden)]
pub fn new_replica<T: ReplicaMethod + 'static>(
    params: FfiPluginParams,
    sink: LogSink,
    plugin: &str,
    ctor: fn(PluginParams) -> PluginResult<T>,
) -> FfiResult<FfiReplicaBox> {
    install_log_sink(sink, plugin);
    let params: PluginParams = params.into();
    to_ffi(guard(|| ctor(params)).map(|d| WrapReplica(FfiReplica_TO::from_value(ReplicaAdapter(d), TD_Opaque))))
}

#[doc(hidden)]
pub fn new_callback<T: Callback + 'static>(
    params: FfiPluginParams,
    sink: LogSink,
    plugin: &str,
    ctor: fn(PluginParams) -> PluginResult<T>,
) -> FfiResult<FfiCallbackBox> {
    install_log_sink(sink, plugin);
    let params: PluginParams = params.into();
    to_ffi(guard(|| ctor(params)).map(|d| WrapCallback(FfiCallback_TO::from_value(CallbackAdapter(d), TD_Opaque))))
}

#[doc(hidden)]
pub fn new_mpp<T: Mpp + 'static>(
    params: FfiPluginParams,
    sink: LogSink,
    plugin: &str,
    ctor: fn(PluginParams) -> PluginResult<T>,
) -> FfiResult<FfiMppBox> {
    install_log_sink(sink, plugin);
    let params: PluginParams = params.into();
    to_ffi(guard(|| ctor(params)).map(|d| WrapMpp(FfiMpp_TO::from_value(MppAdapter(d), TD_Opaque))))
}

// `to_ffi` converts through `From`; these newtypes give the boxes one.
#[doc(hidden)]
pub struct WrapDcs(FfiDcsBox);
impl From<WrapDcs> for FfiDcsBox {
    fn from(w: WrapDcs) -> Self {
        w.0
    }
}
#[doc(hidden)]
pub struct WrapReplica(FfiReplicaBox);
impl From<WrapReplica> for FfiReplicaBox {
    fn from(w: WrapReplica) -> Self {
        w.0
    }
}
#[doc(hidden)]
pub struct WrapCallback(FfiCallbackBox);
impl From<WrapCallback> for FfiCallbackBox {
    fn from(w: WrapCallback) -> Self {
        w.0
    }
}
#[doc(hidden)]
pub struct WrapMpp(FfiMppBox);
impl From<WrapMpp> for FfiMppBox {
    fn from(w: WrapMpp) -> Self {
        w.0
    }
}

fn not_this_kind(wanted: PluginKind) -> FfiError {
    PluginError::config(format!("this plugin does not provide a {wanted} implementation")).into()
}

#[doc(hidden)]
pub extern "C" fn no_dcs(_: FfiDcsParams, _: LogSink) -> FfiResult<FfiDcsBox> {
    abi_stable::std_types::RErr(not_this_kind(PluginKind::Dcs))
}
#[doc(hidden)]
pub extern "C" fn no_replica(_: FfiPluginParams, _: LogSink) -> FfiResult<FfiReplicaBox> {
    abi_stable::std_types::RErr(not_this_kind(PluginKind::Replica))
}
#[doc(hidden)]
pub extern "C" fn no_callback(_: FfiPluginParams, _: LogSink) -> FfiResult<FfiCallbackBox> {
    abi_stable::std_types::RErr(not_this_kind(PluginKind::Callback))
}
#[doc(hidden)]
pub extern "C" fn no_mpp(_: FfiPluginParams, _: LogSink) -> FfiResult<FfiMppBox> {
    abi_stable::std_types::RErr(not_this_kind(PluginKind::Mpp))
}

#[doc(hidden)]
pub use abi_stable as __abi_stable;

/// Export a plugin's root module.
///
/// ```ignore
/// palisade_plugin_api::export_plugin!(dcs, "etcd3", Etcd3::new);
/// palisade_plugin_api::export_plugin!(replica, "basebackup", Basebackup::new);
/// ```
///
/// The constructor is `fn(DcsParams) -> PluginResult<T>` for a DCS and
/// `fn(PluginParams) -> PluginResult<T>` for the other kinds. The crate must
/// also depend on `abi_stable` (the attribute macro refers to it by name).
/// An optional last argument, `api_version = N`, exists for the loader's own
/// tests and should never be used by a real plugin.
#[macro_export]
macro_rules! export_plugin {
    (dcs, $name:expr, $ctor:path $(, api_version = $v:expr)?) => {
        $crate::export_plugin!(@root Dcs, $name, [$($v)?],
            new_dcs: {
                extern "C" fn __palisade_new_dcs(
                    p: $crate::ffi::FfiDcsParams, s: $crate::ffi::LogSink,
                ) -> $crate::ffi::FfiResult<$crate::ffi::FfiDcsBox> {
                    $crate::sdk::new_dcs(p, s, $name, $ctor)
                }
                __palisade_new_dcs
            },
            new_replica: $crate::sdk::no_replica,
            new_callback: $crate::sdk::no_callback,
            new_mpp: $crate::sdk::no_mpp);
    };
    (replica, $name:expr, $ctor:path $(, api_version = $v:expr)?) => {
        $crate::export_plugin!(@root Replica, $name, [$($v)?],
            new_dcs: $crate::sdk::no_dcs,
            new_replica: {
                extern "C" fn __palisade_new_replica(
                    p: $crate::ffi::FfiPluginParams, s: $crate::ffi::LogSink,
                ) -> $crate::ffi::FfiResult<$crate::ffi::FfiReplicaBox> {
                    $crate::sdk::new_replica(p, s, $name, $ctor)
                }
                __palisade_new_replica
            },
            new_callback: $crate::sdk::no_callback,
            new_mpp: $crate::sdk::no_mpp);
    };
    (callback, $name:expr, $ctor:path $(, api_version = $v:expr)?) => {
        $crate::export_plugin!(@root Callback, $name, [$($v)?],
            new_dcs: $crate::sdk::no_dcs,
            new_replica: $crate::sdk::no_replica,
            new_callback: {
                extern "C" fn __palisade_new_callback(
                    p: $crate::ffi::FfiPluginParams, s: $crate::ffi::LogSink,
                ) -> $crate::ffi::FfiResult<$crate::ffi::FfiCallbackBox> {
                    $crate::sdk::new_callback(p, s, $name, $ctor)
                }
                __palisade_new_callback
            },
            new_mpp: $crate::sdk::no_mpp);
    };
    (mpp, $name:expr, $ctor:path $(, api_version = $v:expr)?) => {
        $crate::export_plugin!(@root Mpp, $name, [$($v)?],
            new_dcs: $crate::sdk::no_dcs,
            new_replica: $crate::sdk::no_replica,
            new_callback: $crate::sdk::no_callback,
            new_mpp: {
                extern "C" fn __palisade_new_mpp(
                    p: $crate::ffi::FfiPluginParams, s: $crate::ffi::LogSink,
                ) -> $crate::ffi::FfiResult<$crate::ffi::FfiMppBox> {
                    $crate::sdk::new_mpp(p, s, $name, $ctor)
                }
                __palisade_new_mpp
            });
    };
    (@api_version []) => { $crate::API_VERSION };
    (@api_version [$v:expr]) => { $v };
    (@root $kind:ident, $name:expr, [$($v:expr)?],
        new_dcs: $dcs:expr, new_replica: $replica:expr, new_callback: $callback:expr, new_mpp: $mpp:expr) => {
        extern "C" fn __palisade_plugin_info() -> $crate::ffi::FfiPluginInfo {
            $crate::ffi::FfiPluginInfo::new(
                $crate::PluginKind::$kind,
                $name,
                $crate::export_plugin!(@api_version [$($v)?]),
                env!("CARGO_PKG_VERSION"),
            )
        }

        #[::abi_stable::export_root_module]
        pub fn __palisade_plugin_root() -> $crate::ffi::PluginModRef {
            use ::abi_stable::prefix_type::PrefixTypeTrait;
            $crate::ffi::PluginMod {
                info: __palisade_plugin_info,
                new_dcs: $dcs,
                new_replica: $replica,
                new_callback: $callback,
                new_mpp: $mpp,
            }
            .leak_into_prefix()
        }
    };
}
