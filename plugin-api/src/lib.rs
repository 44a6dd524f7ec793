//! The stable boundary between the `palisade` host and its plugins.
//!
//! A plugin is a `cdylib` built only against this crate. It exports one
//! root module ([`ffi::PluginMod`]) that says what it is (kind, name, the
//! plugin-api version it was built with) and how to construct it.
//!
//! The crate has three layers:
//!
//! - [`contract`]: plain Rust types and traits ([`Dcs`], [`ReplicaMethod`],
//!   [`Callback`], [`Mpp`]). Both sides program against these: a plugin
//!   implements them, and the host calls them. An in-process implementation
//!   (a test double, a simulator) implements them directly.
//! - [`ffi`]: the `abi_stable` mirror of the contract (`R*` types,
//!   `#[sabi_trait]` objects and the root module). Nothing outside this crate
//!   and the host's plugin loader ever sees these types.
//! - [`sdk`] (plugin side: the export macro, panic catching, log forwarding,
//!   a private tokio runtime) and [`host`] (host side: wrapping a loaded
//!   plugin back into the plain traits).
//!
//! This crate does no IO of its own, and it must never grow cargo features
//! that change the layout of a type in [`ffi`].

pub mod contract;
pub mod ffi;
pub mod host;
pub mod sdk;
pub mod stack;

pub use contract::*;

/// Our own ABI generation. It is checked at load time on top of
/// abi_stable's layout check, and bumped whenever a plugin built against an
/// older plugin-api must be refused even though the layout still matches
/// (for example when the meaning of a field changes).
pub const API_VERSION: u32 = 1;
