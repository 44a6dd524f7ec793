//! Checking the replica methods' plugins in a child process at start.
//!
//! The daemon must know at start whether its replica methods load and
//! accept their sections (a problem stops it, as any plugin problem does),
//! whether each works without a leader, and which archive commands each
//! offers a standby cluster. Loading a plugin for that would map its code
//! into the daemon for good (a library is never unloaded), although most
//! daemons never make a replica after their first start: the default
//! `basebackup` plugin alone is about 0.5 MiB of RSS. So a forked child
//! loads them ([`palisade_plugin_host::plugins::probe_replicas`]), writes
//! what it found to a pipe and exits; the daemon then loads a method's
//! plugin when it first makes a replica with it.
//!
//! Forking is safe only while the process has one thread: [`replica_methods`]
//! checks that, and `run_daemon` calls it before the runtime starts. When
//! the child cannot be used (more threads, no fork, a child that crashed or
//! said nothing readable), the daemon loads the plugins itself, as it
//! would without this module.

use std::io::{Read, Write};
use std::path::Path;

use palisade_config::LocalConfig;
use palisade_plugin_host::plugins::{self, LoadProblem, ReplicaFacts};
use serde_json::{json, Value};

/// What the child found: the facts of every method, or every problem.
pub type Probed = Result<Vec<ReplicaFacts>, Vec<LoadProblem>>;

/// Load the replica methods' plugins in a child process (see the module
/// documentation). `None`: no child could be used; load them in-process.
pub fn replica_methods(config: &LocalConfig, dir: &Path, also: &[String]) -> Option<Probed> {
    if !single_threaded() {
        tracing::debug!("replica methods: more than one thread, loading their plugins in this process");
        return None;
    }
    let (read, write) = match nix::unistd::pipe() {
        Ok(p) => p,
        Err(e) => {
            tracing::debug!("replica methods: no pipe ({e}), loading their plugins in this process");
            return None;
        }
    };
    // SAFETY: the process has a single thread (checked above), so the child
    // is a complete copy; it only loads plugins, writes to the pipe and
    // leaves with _exit, never returning into the caller.
    match unsafe { nix::unistd::fork() } {
        Err(e) => {
            tracing::debug!("replica methods: cannot fork ({e}), loading their plugins in this process");
            None
        }
        Ok(nix::unistd::ForkResult::Child) => {
            drop(read);
            let probed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                encode(&plugins::probe_replicas(config, dir, also))
            }));
            let code = match probed {
                Ok(text) => {
                    let mut pipe = std::fs::File::from(write);
                    i32::from(pipe.write_all(text.as_bytes()).is_err())
                }
                Err(_) => 1,
            };
            // SAFETY: _exit ends the child at once, without running the
            // parent's exit handlers or flushing its copied buffers.
            unsafe { libc::_exit(code) }
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => {
            drop(write);
            let mut text = String::new();
            let read = std::fs::File::from(read).read_to_string(&mut text);
            let status = nix::sys::wait::waitpid(child, None);
            match (read, status) {
                (Ok(_), Ok(nix::sys::wait::WaitStatus::Exited(_, 0))) => {
                    let decoded = decode(&text);
                    if decoded.is_none() {
                        tracing::warn!("replica methods: the child's report is unreadable, loading their plugins here");
                    }
                    decoded
                }
                (_, status) => {
                    tracing::warn!(
                        "replica methods: the child that checks their plugins failed ({status:?}), loading them here"
                    );
                    None
                }
            }
        }
    }
}

fn single_threaded() -> bool {
    std::fs::read_dir("/proc/self/task").is_ok_and(|d| d.count() == 1)
}

/// The child's report.
pub fn encode(probed: &Probed) -> String {
    match probed {
        Ok(facts) => json!({"methods": facts.iter().map(ReplicaFacts::to_json).collect::<Vec<_>>()}),
        Err(problems) => json!({"problems": problems.iter().map(|p| p.0.clone()).collect::<Vec<_>>()}),
    }
    .to_string()
}

/// A report [`encode`] made, or `None`.
pub fn decode(text: &str) -> Option<Probed> {
    let v: Value = serde_json::from_str(text).ok()?;
    if let Some(methods) = v.get("methods") {
        return methods.as_array()?.iter().map(ReplicaFacts::from_json).collect::<Option<Vec<_>>>().map(Ok);
    }
    let problems = v.get("problems")?.as_array()?;
    problems.iter().map(|p| p.as_str().map(|s| LoadProblem(s.to_string()))).collect::<Option<Vec<_>>>().map(Err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_plugin_api::ArchiveCommands;

    /// The test harness runs tests on threads of its own: a process with
    /// more than one thread is never forked, and the caller loads the
    /// plugins itself.
    #[test]
    fn a_process_with_threads_is_not_forked() {
        let env = std::collections::BTreeMap::from([("PATRONI_SCOPE".to_string(), "test".to_string())]);
        let config = palisade_config::load_for_ctl(None, &env).unwrap().config;
        assert!(!single_threaded());
        assert_eq!(replica_methods(&config, Path::new("/nonexistent"), &[]), None);
    }

    #[test]
    fn reports_come_back_as_they_were_sent_and_garbage_is_refused() {
        let facts = vec![
            ReplicaFacts {
                method: "basebackup".into(),
                without_leader: false,
                keep_data: false,
                archive: ArchiveCommands::default(),
            },
            ReplicaFacts {
                method: "pgbackrest".into(),
                without_leader: true,
                keep_data: true,
                archive: ArchiveCommands {
                    restore_command: Some("pgbackrest --stanza=main archive-get %f \"%p\"".into()),
                    archive_cleanup_command: None,
                },
            },
        ];
        let cases: Vec<Probed> =
            vec![Ok(facts), Ok(Vec::new()), Err(vec![LoadProblem("libpalisade_replica_walg.so: no such file".into())])];
        for probed in cases {
            assert_eq!(decode(&encode(&probed)), Some(probed.clone()), "{probed:?}");
        }
        for garbage in [
            "",
            "{",
            "[]",
            "{}",
            r#"{"methods": {}}"#,
            r#"{"methods": [{"method": "x"}]}"#,
            r#"{"methods": [{"method": "x", "without_leader": 1, "keep_data": false, "restore_command": null, "archive_cleanup_command": null}]}"#,
            r#"{"problems": [1]}"#,
        ] {
            assert_eq!(decode(garbage), None, "{garbage}");
        }
    }
}
