//! `postgresql.hooks` (a Palisade extension): for each callback event, an
//! ordered list of commands run one after the other, each waited for up to
//! its timeout and killed (its whole process group) after it. Unlike
//! Patroni's callbacks, a hook is never killed by a later event: the hooks
//! of successive events run in the order of the events, on one background
//! worker, so the HA loop never waits for them. A hook that fails, times out
//! or cannot be started is logged at ERROR with what it printed; the next
//! hook of the list runs all the same. At shutdown the daemon waits for the
//! hooks already queued (each bounded by its timeout) before it exits.
//!
//! A hook is called as `<command...> <action> <role> <scope>`, like a
//! callback, in the daemon's working directory and environment.

use std::sync::OnceLock;
use std::time::Duration;

use palisade_config::Hook;
use tokio::sync::{mpsc, oneshot};

/// What an event hands the worker.
enum Job {
    Run {
        action: String,
        hooks: Vec<Hook>,
        tail: [String; 3],
    },
    /// Answered once every job queued before it is done.
    Barrier(oneshot::Sender<()>),
}

/// The hooks' worker, started on first use.
#[derive(Default)]
pub struct Hooks {
    tx: OnceLock<mpsc::UnboundedSender<Job>>,
}

impl Hooks {
    fn sender(&self) -> &mpsc::UnboundedSender<Job> {
        self.tx.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(work(rx));
            tx
        })
    }

    /// Queue `hooks` for `action`, called with `role` and `scope`.
    pub fn fire(&self, action: &str, hooks: &[Hook], role: &str, scope: &str) {
        if hooks.is_empty() {
            return;
        }
        let job = Job::Run {
            action: action.to_string(),
            hooks: hooks.to_vec(),
            tail: [action.to_string(), role.to_string(), scope.to_string()],
        };
        if self.sender().send(job).is_err() {
            tracing::error!("hooks for {action} not run: the hook worker has stopped");
        }
    }

    /// Wait until every hook queued so far has ended.
    pub async fn drain(&self) {
        let Some(tx) = self.tx.get() else { return };
        let (done, wait) = oneshot::channel();
        if tx.send(Job::Barrier(done)).is_ok() {
            let _ = wait.await;
        }
    }
}

async fn work(mut rx: mpsc::UnboundedReceiver<Job>) {
    while let Some(job) = rx.recv().await {
        match job {
            Job::Barrier(done) => {
                let _ = done.send(());
            }
            Job::Run { action, hooks, tail } => {
                for (i, hook) in hooks.iter().enumerate() {
                    run(&format!("{action} #{}", i + 1), hook, &tail).await;
                }
            }
        }
    }
}

/// How a hook ended.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Exited(i32),
    Signalled(i32),
    TimedOut,
}

/// Run one hook and log how it ended.
async fn run(label: &str, hook: &Hook, tail: &[String; 3]) {
    tracing::debug!("running hook {label} `{}`", hook.command);
    match execute(&hook.argv, tail, hook.timeout).await {
        Err(e) => tracing::error!("hook {label} `{}` could not be started: {e}", hook.command),
        Ok((Outcome::Exited(0), _)) => tracing::info!("hook {label} `{}` exited with 0", hook.command),
        Ok((outcome, output)) => {
            let how = match outcome {
                Outcome::Exited(code) => format!("exited with {code}"),
                Outcome::Signalled(sig) => format!("was terminated by signal {sig}"),
                Outcome::TimedOut => format!("did not end within {} s and was killed", hook.timeout.as_secs()),
            };
            let output = output.trim_end();
            if output.is_empty() {
                tracing::error!("hook {label} `{}` {how}; it printed nothing", hook.command);
            } else {
                tracing::error!("hook {label} `{}` {how}; its output:\n{output}", hook.command);
            }
        }
    }
}

/// The most of a hook's output that is logged.
const OUTPUT_LIMIT: usize = 8192;

/// Run `argv` + `tail` in a process group of its own, its output captured
/// (stdout, then stderr), killing the group after `timeout`.
async fn execute(argv: &[String], tail: &[String; 3], timeout: Duration) -> std::io::Result<(Outcome, String)> {
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;
    let (program, args) = argv.split_first().ok_or_else(|| std::io::Error::other("empty command"))?;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .args(tail)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let child = cmd.spawn()?;
    let group = child.id().and_then(|id| i32::try_from(id).ok());
    let waited = tokio::time::timeout(timeout, child.wait_with_output()).await;
    let (outcome, stdout, stderr) = match waited {
        Ok(Ok(out)) => {
            let outcome = match (out.status.code(), out.status.signal()) {
                (Some(code), _) => Outcome::Exited(code),
                (None, Some(sig)) => Outcome::Signalled(sig),
                (None, None) => Outcome::Exited(-1),
            };
            (outcome, out.stdout, out.stderr)
        }
        Ok(Err(e)) => return Err(e),
        Err(_) => {
            // The child was dropped (and killed); what it started goes too.
            if let Some(pid) = group {
                let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            }
            (Outcome::TimedOut, Vec::new(), Vec::new())
        }
    };
    let mut output = String::from_utf8_lossy(&stdout).into_owned();
    output.push_str(&String::from_utf8_lossy(&stderr));
    if output.len() > OUTPUT_LIMIT {
        let mut cut = OUTPUT_LIMIT;
        while !output.is_char_boundary(cut) {
            cut -= 1;
        }
        output.truncate(cut);
        output.push_str("\n[output cut]");
    }
    Ok((outcome, output))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Vec<String> {
        vec!["/bin/sh".into(), "-c".into(), script.into(), "hook".into()]
    }

    fn tail() -> [String; 3] {
        ["on_role_change".into(), "primary".into(), "demo".into()]
    }

    #[tokio::test]
    async fn outcomes_and_output() {
        let (o, out) = execute(&sh("echo \"$1 $2 $3\"; echo oops >&2; exit 3"), &tail(), Duration::from_secs(10))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(o, Outcome::Exited(3));
        assert_eq!(out, "on_role_change primary demo\noops\n");
        let (o, _) = execute(&sh("exit 0"), &tail(), Duration::from_secs(10)).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(o, Outcome::Exited(0));
        let (o, _) =
            execute(&sh("kill -TERM $$"), &tail(), Duration::from_secs(10)).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(o, Outcome::Signalled(15));
        assert!(execute(&["/nonexistent/hook".into()], &tail(), Duration::from_secs(1)).await.is_err());
    }

    #[tokio::test]
    async fn a_hook_past_its_timeout_is_killed_with_what_it_started() {
        let dir = std::env::temp_dir().join(format!("palisade-hook-test-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let pidfile = dir.join("pid");
        let script = format!("sleep 300 & echo $! > {}; wait", pidfile.display());
        let (o, _) = execute(&sh(&script), &tail(), Duration::from_secs(1)).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(o, Outcome::TimedOut);
        let pid: i32 = std::fs::read_to_string(&pidfile).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0);
        assert!(pid > 0, "the hook wrote its child's pid");
        let gone = (0..100).any(|_| {
            let alive = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')));
            if alive {
                std::thread::sleep(Duration::from_millis(50));
            }
            !alive
        });
        let _ = std::fs::remove_dir_all(&dir);
        assert!(gone, "the hook's own child {pid} was killed with it");
    }

    #[tokio::test]
    async fn hooks_run_in_order_and_drain_waits_for_them() {
        let dir = std::env::temp_dir().join(format!("palisade-hook-order-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let out = dir.join("calls");
        let hook = |text: &str, sleep: &str| Hook {
            command: text.into(),
            argv: sh(&format!("sleep {sleep}; echo {text} $1 >> {}", out.display())),
            timeout: Duration::from_secs(10),
        };
        let hooks = Hooks::default();
        hooks.fire("on_stop", &[hook("a", "0.3"), hook("b", "0")], "replica", "demo");
        hooks.fire("on_start", &[hook("c", "0")], "replica", "demo");
        hooks.drain().await;
        let calls = std::fs::read_to_string(&out).unwrap_or_default();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(calls, "a on_stop\nb on_stop\nc on_start\n");
    }
}
