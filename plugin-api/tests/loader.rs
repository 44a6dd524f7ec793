#![allow(clippy::unwrap_used)]
//! The loader against small plugins built for the purpose (tests/plugins):
//! every way a file can be refused, and a plugin that panics.
//!
//! The fixtures are cdylibs of this workspace: `cargo build --workspace`
//! builds them next to this test binary.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use palisade_plugin_api::host::{open, LoadError};
use palisade_plugin_api::{DcsParams, DcsTiming, ErrorKind, PluginKind};
use palisade_test_support::{target_dir, Staging};

fn fixture(name: &str) -> PathBuf {
    let path = target_dir().join(name);
    assert!(path.exists(), "{} is missing: run `cargo build --workspace` first", path.display());
    path
}

fn params() -> DcsParams {
    DcsParams {
        scope: "demo".into(),
        namespace: "/service/".into(),
        name: "node1".into(),
        group: None,
        timing: DcsTiming {
            ttl: Duration::from_secs(30),
            loop_wait: Duration::from_secs(10),
            retry_timeout: Duration::from_secs(10),
        },
        section_json: "{}".into(),
    }
}

#[test]
fn a_missing_file_is_named() {
    let path = Path::new("/nonexistent/libpalisade_dcs_nothing.so");
    let err = open(path, PluginKind::Dcs, Some("nothing")).unwrap_err();
    assert!(matches!(err, LoadError::Missing { .. }), "{err:?}");
    assert_eq!(err.to_string(), "/nonexistent/libpalisade_dcs_nothing.so: no such plugin file");
}

#[test]
fn a_file_that_is_not_a_library_is_refused() {
    let staging = Staging::new("loader");
    let path = staging.write("libpalisade_dcs_text.so", "this is not an ELF file\n", 0o644);
    let err = open(&path, PluginKind::Dcs, Some("text")).unwrap_err();
    assert!(matches!(err, LoadError::NotAPlugin { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.starts_with(&format!("{}: not a palisade plugin", path.display())), "{msg}");
    assert!(!msg.contains('\n'), "one short line: {msg}");
}

#[test]
fn a_library_without_our_root_module_is_refused() {
    // Any shared library that is not a palisade plugin: the C library.
    let libc = ["/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libc.so.6", "/lib64/libc.so.6"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists())
        .expect("a libc to load");
    let err = open(libc, PluginKind::Dcs, None).unwrap_err();
    assert!(matches!(err, LoadError::NotAPlugin { .. }), "{err:?}");
    assert!(err.to_string().contains("does not export a palisade root module"), "{err}");
}

#[test]
fn the_wrong_kind_is_refused() {
    let err = open(&fixture("libpalisade_dcs_panicky.so"), PluginKind::Replica, None).unwrap_err();
    assert!(
        matches!(err, LoadError::WrongKind { expected: PluginKind::Replica, found: PluginKind::Dcs, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("plugin 'panicky' is a dcs plugin, but a replica plugin is needed here"), "{err}");
}

#[test]
fn the_wrong_name_is_refused() {
    let err = open(&fixture("libpalisade_dcs_panicky.so"), PluginKind::Dcs, Some("etcd3")).unwrap_err();
    assert!(matches!(err, LoadError::WrongName { .. }), "{err:?}");
}

#[test]
fn an_incompatible_layout_gets_a_short_message_and_keeps_the_details() {
    let err = open(&fixture("libpalisade_dcs_badlayout.so"), PluginKind::Dcs, None).unwrap_err();
    assert!(matches!(err, LoadError::IncompatibleAbi { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(!msg.contains('\n') && msg.len() < 300, "short: {msg}");
    assert!(msg.contains("incompatible plugin ABI"), "{msg}");
    assert!(err.details().is_some_and(|d| d.len() > msg.len()), "the long report is kept for debug logs");
}

#[test]
fn an_incompatible_api_version_is_refused() {
    let err = open(&fixture("libpalisade_callback_future.so"), PluginKind::Callback, None).unwrap_err();
    match err {
        LoadError::IncompatibleVersion { expected, found, .. } => {
            assert_eq!(expected, palisade_plugin_api::API_VERSION);
            assert_eq!(found, palisade_plugin_api::API_VERSION + 1);
        }
        other => panic!("expected IncompatibleVersion, got {other:?}"),
    }
}

/// Captures what plugins log through the host's tracing.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<String>>>);

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        struct V(String);
        impl tracing::field::Visit for V {
            fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                if f.name() == "message" {
                    self.0 = format!("{v:?}");
                }
            }
        }
        let mut v = V(String::new());
        event.record(&mut v);
        self.0.lock().unwrap().push(format!("{} {}", event.metadata().level(), v.0));
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn a_panicking_plugin_returns_errors_and_logs_with_its_name() {
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());
    let plugin = open(&fixture("libpalisade_dcs_panicky.so"), PluginKind::Dcs, Some("panicky")).unwrap();
    assert_eq!(plugin.info().name, "panicky");
    let dcs = plugin.new_dcs(params()).unwrap();
    for _ in 0..3 {
        let err = dcs.get_cluster().unwrap_err();
        assert_eq!(err.kind, ErrorKind::Panic);
        assert!(err.message.contains("get_cluster exploded on purpose"), "{err}");
    }
    let err = dcs.watch(None, Duration::from_millis(1)).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Panic);
    // The method appended after the first release is guarded the same way.
    let err = dcs.get_mpp_groups().unwrap_err();
    assert_eq!(err.kind, ErrorKind::Panic);
    assert!(err.message.contains("get_mpp_groups exploded on purpose"), "{err}");
    let lines = capture.0.lock().unwrap().clone();
    assert!(lines.iter().any(|l| l == "INFO [panicky] constructed for scope demo"), "{lines:?}");
    assert!(lines.iter().any(|l| l.starts_with("WARN [panicky] this plugin panics on every call")), "{lines:?}");
    assert!(
        lines.iter().any(|l| l.starts_with("ERROR [panicky] panic at") && l.contains("get_cluster exploded")),
        "the panic itself is reported through the host's log: {lines:?}"
    );
}

#[test]
fn two_plugins_of_one_kind_load_as_themselves() {
    // abi_stable's RootModule::load_from_file would hand back the first
    // module for the second file; the loader must not.
    let staging = Staging::new("loader-two");
    let first = fixture("libpalisade_dcs_panicky.so");
    let copy = staging.install(&first, "libpalisade_dcs_panicky_copy.so");
    let a = open(&first, PluginKind::Dcs, None).unwrap();
    let b = open(&copy, PluginKind::Dcs, None).unwrap();
    assert_eq!(a.path(), first.as_path());
    assert_eq!(b.path(), copy.as_path());
}
