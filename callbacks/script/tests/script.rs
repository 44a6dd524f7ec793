#![allow(clippy::unwrap_used)]
//! The script callback plugin loaded through the real plugin loader, running
//! a shell script that writes its arguments to a file.
//!
//! The plugin is a cdylib of this workspace: `cargo build --workspace` (or
//! `cargo build -p palisade-callback-script`) builds it next to this test
//! binary.

use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use palisade_plugin_api::host::open;
use palisade_plugin_api::{Callback, CallbackEvent, PluginKind, PluginParams, PluginResult};
use palisade_test_support::{target_dir, wait_for, wait_until, Staging};
use serde_json::{json, Value};

/// `cb.sh <out-file> <seconds> <action> <role> <scope>`
const CALLBACK: &str = r#"#!/bin/sh
# Test fixture: appends "action role scope" to the file named first, records
# its pid, sleeps as long as asked, then appends "done action".
out="$1"; secs="$2"; shift 2
echo $$ > "$out.$1.pid"
printf '%s %s %s\n' "$1" "$2" "$3" >> "$out"
if [ "$secs" != 0 ]; then sleep "$secs"; fi
printf 'done %s\n' "$1" >> "$out"
"#;

fn plugin(config: Value) -> PluginResult<Box<dyn Callback>> {
    let path = target_dir().join("libpalisade_callback_script.so");
    assert!(path.exists(), "{} is missing: run `cargo build --workspace` first", path.display());
    let opened = open(&path, PluginKind::Callback, Some("script")).unwrap_or_else(|e| panic!("{e}"));
    opened.new_callback(PluginParams { scope: "demo".into(), name: "node1".into(), config_json: config.to_string() })
}

fn event(action: &str, role: &str) -> CallbackEvent {
    CallbackEvent { action: action.into(), role: role.into(), scope: "demo".into(), name: "node1".into() }
}

/// The process's state letter and parent, from /proc.
fn stat(pid: i32) -> Option<(char, i32)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = s.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

fn our_child(pid: i32) -> bool {
    stat(pid).is_some_and(|(_, ppid)| ppid == std::process::id() as i32)
}

/// Running (not a zombie).
fn running(pid: i32) -> bool {
    stat(pid).is_some_and(|(state, _)| state != 'Z')
}

/// Gone, or at least not a child of ours: reaped, no zombie left behind.
fn reaped(pid: i32) -> bool {
    !our_child(pid)
}

struct Fixture {
    _staging: Staging,
    script: PathBuf,
    out: PathBuf,
}

impl Fixture {
    fn new(label: &str) -> Self {
        let staging = Staging::new(label);
        let script = staging.write("cb.sh", CALLBACK, 0o755);
        let out = staging.path().join("calls");
        Self { _staging: staging, script, out }
    }

    /// The command for a callback that sleeps `secs` seconds.
    fn command(&self, secs: u32) -> String {
        format!("{} {} {secs}", self.script.display(), self.out.display())
    }

    fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.out).unwrap_or_default().lines().map(str::to_string).collect()
    }

    fn has_line(&self, line: &str) -> bool {
        self.lines().iter().any(|l| l == line)
    }

    /// The pid the callback for `action` recorded last.
    fn pid(&self, action: &str) -> i32 {
        let file = PathBuf::from(format!("{}.{action}.pid", self.out.display()));
        wait_for(&format!("{action} to start"), Duration::from_secs(20), || {
            std::fs::read_to_string(&file).ok().and_then(|s| s.trim().parse().ok())
        })
    }

    fn forget_pid(&self, action: &str) {
        let _ = std::fs::remove_file(format!("{}.{action}.pid", self.out.display()));
    }
}

impl Drop for Fixture {
    /// Kill what a failed test may have left running (only our children).
    fn drop(&mut self) {
        for action in ["on_start", "on_stop", "on_restart", "on_reload", "on_role_change"] {
            let file = format!("{}.{action}.pid", self.out.display());
            if let Some(pid) = std::fs::read_to_string(file).ok().and_then(|s| s.trim().parse::<i32>().ok()) {
                if our_child(pid) && running(pid) {
                    let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
                }
            }
        }
    }
}

#[test]
fn the_command_gets_action_role_and_scope() {
    let f = Fixture::new("cb-args");
    let cb =
        plugin(json!({"on_start": f.command(0), "on_role_change": f.command(0)})).unwrap_or_else(|e| panic!("{e}"));
    cb.on_event(&event("on_start", "replica")).unwrap_or_else(|e| panic!("{e}"));
    assert!(wait_until(Duration::from_secs(20), || f.has_line("done on_start")), "{:?}", f.lines());
    cb.on_event(&event("on_role_change", "primary")).unwrap_or_else(|e| panic!("{e}"));
    assert!(wait_until(Duration::from_secs(20), || f.has_line("done on_role_change")), "{:?}", f.lines());
    assert_eq!(
        f.lines(),
        ["on_start replica demo", "done on_start", "on_role_change primary demo", "done on_role_change"]
    );

    // Not configured: nothing runs, no error.
    cb.on_event(&event("on_stop", "primary")).unwrap_or_else(|e| panic!("{e}"));
    // Not an action at all: a configuration error naming the key.
    let err = cb.on_event(&event("on_promote", "primary")).expect_err("unknown action");
    assert!(err.message.starts_with("postgresql.callbacks.on_promote:"), "{err}");
}

#[test]
fn on_event_returns_while_the_callback_still_runs() {
    let f = Fixture::new("cb-nowait");
    let cb = plugin(json!({"on_start": f.command(600), "on_stop": f.command(0)})).unwrap_or_else(|e| panic!("{e}"));
    cb.on_event(&event("on_start", "replica")).unwrap_or_else(|e| panic!("{e}"));
    // Had on_event waited for the script, the script would be gone by now.
    let pid = f.pid("on_start");
    assert!(running(pid), "the callback is still running after on_event returned");
    assert!(!f.has_line("done on_start"));

    // on_stop kills it and runs; the killed one is reaped.
    cb.on_event(&event("on_stop", "replica")).unwrap_or_else(|e| panic!("{e}"));
    assert!(wait_until(Duration::from_secs(20), || f.has_line("done on_stop")), "{:?}", f.lines());
    assert!(wait_until(Duration::from_secs(20), || reaped(pid)), "the killed callback is reaped");
    assert!(!f.has_line("done on_start"), "the killed callback never finished");
}

#[test]
fn a_new_callback_kills_the_one_still_running() {
    let f = Fixture::new("cb-kill");
    let cb = plugin(json!({"on_start": f.command(600), "on_role_change": f.command(600), "on_restart": f.command(0)}))
        .unwrap_or_else(|e| panic!("{e}"));

    cb.on_event(&event("on_start", "replica")).unwrap_or_else(|e| panic!("{e}"));
    let first = f.pid("on_start");
    cb.on_event(&event("on_role_change", "primary")).unwrap_or_else(|e| panic!("{e}"));
    let second = f.pid("on_role_change");
    assert!(wait_until(Duration::from_secs(20), || reaped(first)), "on_start was killed and reaped");
    assert!(running(second));

    cb.on_event(&event("on_restart", "primary")).unwrap_or_else(|e| panic!("{e}"));
    assert!(wait_until(Duration::from_secs(20), || f.has_line("done on_restart")), "{:?}", f.lines());
    assert!(wait_until(Duration::from_secs(20), || reaped(second)), "on_role_change was killed and reaped");
    assert_eq!(
        f.lines(),
        ["on_start replica demo", "on_role_change primary demo", "on_restart primary demo", "done on_restart"]
    );
}

#[test]
fn on_reload_only_kills_an_earlier_on_reload() {
    let f = Fixture::new("cb-reload");
    let cb = plugin(json!({"on_start": f.command(600), "on_reload": f.command(600), "on_stop": f.command(0)}))
        .unwrap_or_else(|e| panic!("{e}"));

    cb.on_event(&event("on_start", "primary")).unwrap_or_else(|e| panic!("{e}"));
    let start = f.pid("on_start");
    cb.on_event(&event("on_reload", "primary")).unwrap_or_else(|e| panic!("{e}"));
    let reload1 = f.pid("on_reload");
    f.forget_pid("on_reload");
    assert!(running(start), "on_reload does not kill on_start");

    cb.on_event(&event("on_reload", "primary")).unwrap_or_else(|e| panic!("{e}"));
    let reload2 = f.pid("on_reload");
    assert_ne!(reload1, reload2);
    assert!(wait_until(Duration::from_secs(20), || reaped(reload1)), "the earlier on_reload was killed and reaped");
    assert!(running(start), "still not on_start");
    assert!(running(reload2));

    // on_stop kills on_start but not the running on_reload.
    cb.on_event(&event("on_stop", "primary")).unwrap_or_else(|e| panic!("{e}"));
    assert!(wait_until(Duration::from_secs(20), || f.has_line("done on_stop")), "{:?}", f.lines());
    assert!(wait_until(Duration::from_secs(20), || reaped(start)));
    assert!(running(reload2), "on_stop does not kill on_reload");

    // A callback killed from outside is reaped as well.
    let _ = killpg(Pid::from_raw(reload2), Signal::SIGKILL);
    assert!(wait_until(Duration::from_secs(20), || reaped(reload2)), "an on_reload killed from outside is reaped too");
}

#[test]
fn no_zombie_is_left_behind() {
    let f = Fixture::new("cb-zombies");
    let cb = plugin(json!({
        "on_start": f.command(0),
        "on_stop": f.command(600),
        "on_restart": f.command(0),
        "on_reload": f.command(0),
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    let mut pids = Vec::new();
    let mut done = 0;
    // Quick ones are waited for, so that only on_stop (600 s) gets killed, by on_restart.
    for action in ["on_start", "on_reload", "on_stop", "on_restart", "on_reload"] {
        f.forget_pid(action);
        cb.on_event(&event(action, "replica")).unwrap_or_else(|e| panic!("{e}"));
        pids.push(f.pid(action));
        if action != "on_stop" {
            done += 1;
            let finished = || f.lines().iter().filter(|l| l.starts_with("done ")).count() == done;
            assert!(wait_until(Duration::from_secs(20), finished), "{:?}", f.lines());
        }
    }
    assert!(!f.has_line("done on_stop"), "on_stop was killed by on_restart");
    for pid in pids {
        assert!(
            wait_until(Duration::from_secs(20), || reaped(pid)),
            "callback pid {pid} is still our child: {:?}",
            stat(pid)
        );
    }
}

#[test]
fn the_example_script_records_events() {
    let staging = Staging::new("cb-example");
    let file = staging.path().join("events.log");
    let example = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/record-events.sh");
    assert!(example.exists(), "{} is missing", example.display());
    let command = format!("env PALISADE_EVENTS_FILE={} {}", file.display(), example.display());
    let cb = plugin(json!({"on_start": command, "on_role_change": command})).unwrap_or_else(|e| panic!("{e}"));
    let lines = || std::fs::read_to_string(&file).unwrap_or_default().lines().map(str::to_string).collect::<Vec<_>>();
    cb.on_event(&event("on_start", "replica")).unwrap_or_else(|e| panic!("{e}"));
    assert!(wait_until(Duration::from_secs(20), || lines().len() == 1), "{:?}", lines());
    cb.on_event(&event("on_role_change", "primary")).unwrap_or_else(|e| panic!("{e}"));
    assert!(wait_until(Duration::from_secs(20), || lines().len() == 2), "{:?}", lines());
    assert_eq!(lines(), ["on_start replica demo", "on_role_change primary demo"]);
}
