//! Making a replica in a child process: `palisade --replica-worker`.
//!
//! The daemon learns what it needs of its replica methods at start from a
//! child process (`palisade_daemon::probe`) and makes each replica in
//! another one, so that a replica method's plugin never maps its code into
//! the daemon (a library is never unloaded; most daemons make a replica
//! once, at their first start, and run for months) and a plugin that
//! crashes cannot take the HA loop with it.
//!
//! The protocol, on the worker's standard streams:
//! - stdin, first line: the job as JSON (the plugin's directory and name,
//!   its parameters, the request, the daemon's log level); every later
//!   line `cancel`, or the end of stdin (the daemon is gone), asks the
//!   plugin to cancel;
//! - stdout: the result as JSON, `{"ok": true}` or
//!   `{"error": {"kind": ..., "message": ...}}`;
//! - stderr: the worker's log, one event per line, `LEVEL message`, which
//!   the daemon logs again at that level, and what the plugin's commands
//!   print (the worker points its stdout there), logged at INFO.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};

use palisade_plugin_api::{ErrorKind, PluginError, PluginParams, PluginResult, ReplicaMethod, ReplicaRequest};
use serde_json::{json, Value};

/// One replica to make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    pub dir: PathBuf,
    pub plugin: String,
    pub params: PluginParams,
    pub request: ReplicaRequest,
    /// `ERROR`, `WARN`, `INFO`, `DEBUG` or `TRACE`.
    pub log_level: String,
}

impl Job {
    pub fn to_json(&self) -> Value {
        let r = &self.request;
        json!({
            "dir": self.dir.to_string_lossy(),
            "plugin": self.plugin,
            "params": {"scope": self.params.scope, "name": self.params.name, "config_json": self.params.config_json},
            "request": {
                "scope": r.scope, "name": r.name, "role": r.role, "data_dir": r.data_dir, "bin_dir": r.bin_dir,
                "connstring": r.connstring, "env": r.env.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
                "cwd": r.cwd,
            },
            "log_level": self.log_level,
        })
    }

    /// The job [`Job::to_json`] made, or what is wrong with it.
    pub fn from_json(v: &Value) -> Result<Self, String> {
        fn text(v: &Value, key: &str) -> Result<String, String> {
            v.get(key).and_then(Value::as_str).map(str::to_string).ok_or_else(|| format!("'{key}' is not a string"))
        }
        let params = v.get("params").ok_or("no 'params'")?;
        let r = v.get("request").ok_or("no 'request'")?;
        let connstring = match r.get("connstring") {
            Some(Value::Null) | None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err("'connstring' is not a string".into()),
        };
        let env = r
            .get("env")
            .and_then(Value::as_array)
            .ok_or("'env' is not a list")?
            .iter()
            .map(|pair| match pair.as_array().map(Vec::as_slice) {
                Some([Value::String(k), Value::String(v)]) => Ok((k.clone(), v.clone())),
                _ => Err("an 'env' entry is not a pair of strings".to_string()),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            dir: PathBuf::from(text(v, "dir")?),
            plugin: text(v, "plugin")?,
            params: PluginParams {
                scope: text(params, "scope")?,
                name: text(params, "name")?,
                config_json: text(params, "config_json")?,
            },
            request: ReplicaRequest {
                scope: text(r, "scope")?,
                name: text(r, "name")?,
                role: text(r, "role")?,
                data_dir: text(r, "data_dir")?,
                bin_dir: text(r, "bin_dir")?,
                connstring,
                env,
                cwd: text(r, "cwd")?,
            },
            log_level: text(v, "log_level")?,
        })
    }
}

fn kind_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::DcsUnavailable => "dcs_unavailable",
        ErrorKind::Config => "config",
        ErrorKind::Panic => "panic",
        ErrorKind::Timeout => "timeout",
        ErrorKind::Other => "other",
    }
}

fn kind_of(name: &str) -> ErrorKind {
    match name {
        "dcs_unavailable" => ErrorKind::DcsUnavailable,
        "config" => ErrorKind::Config,
        "panic" => ErrorKind::Panic,
        "timeout" => ErrorKind::Timeout,
        _ => ErrorKind::Other,
    }
}

pub fn encode_result(result: &PluginResult<()>) -> String {
    match result {
        Ok(()) => json!({"ok": true}),
        Err(e) => json!({"error": {"kind": kind_name(e.kind), "message": e.message}}),
    }
    .to_string()
}

/// The worker's result, or `None` when `text` is not one.
pub fn decode_result(text: &str) -> Option<PluginResult<()>> {
    let v: Value = serde_json::from_str(text.trim()).ok()?;
    if v.get("ok") == Some(&Value::Bool(true)) {
        return Some(Ok(()));
    }
    let e = v.get("error")?;
    Some(Err(PluginError::new(kind_of(e.get("kind")?.as_str()?), e.get("message")?.as_str()?)))
}

/// The worker's side: read the job from `input`, start the log at the
/// job's level (`start_log`), make the replica, write the result to
/// `output`. Later lines of `input` (or its end) cancel.
pub fn serve(
    input: impl Read + Send + 'static,
    mut output: impl Write,
    start_log: impl FnOnce(&str),
) -> std::io::Result<()> {
    let mut input = BufReader::new(input);
    let mut first = String::new();
    input.read_line(&mut first)?;
    let result = serde_json::from_str::<Value>(&first)
        .map_err(|e| e.to_string())
        .and_then(|v| Job::from_json(&v))
        .map_err(|e| PluginError::new(ErrorKind::Other, format!("replica worker: unreadable job: {e}")))
        .and_then(|job| {
            start_log(&job.log_level);
            let plugin: Arc<dyn ReplicaMethod> = Arc::from(
                crate::plugins::open_replica(&job.dir, &job.plugin, job.params.clone())
                    .map_err(|e| PluginError::new(ErrorKind::Config, e))?,
            );
            let watcher = Arc::clone(&plugin);
            std::thread::spawn(move || {
                // Any line after the job, or the end of stdin, cancels.
                let mut line = String::new();
                let _ = input.read_line(&mut line);
                watcher.cancel();
            });
            plugin.create_replica(&job.request)
        });
    writeln!(output, "{}", encode_result(&result))?;
    output.flush()
}

/// The daemon's side: one replica made by `program --replica-worker`.
pub struct Worker {
    program: PathBuf,
    running: Mutex<Option<ChildStdin>>,
}

impl Worker {
    pub fn new(program: PathBuf) -> Self {
        Self { program, running: Mutex::new(None) }
    }

    pub fn program(&self) -> &Path {
        &self.program
    }

    /// Run `job` in a worker and wait for its result.
    pub fn run(&self, job: &Job) -> PluginResult<()> {
        let fail = |what: String| PluginError::new(ErrorKind::Other, format!("replica worker: {what}"));
        let mut child: Child = Command::new(&self.program)
            .arg("--replica-worker")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| fail(format!("cannot start {}: {e}", self.program.display())))?;
        let (Some(mut stdin), Some(mut stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(fail("no pipes to the worker".into()));
        };
        let relay = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                relog(&line);
            }
        });
        let sent = writeln!(stdin, "{}", job.to_json()).and_then(|()| stdin.flush());
        *self.running.lock().unwrap_or_else(|p| p.into_inner()) = Some(stdin);
        let mut out = String::new();
        let read = stdout.read_to_string(&mut out);
        // Closing stdin now would read as a cancel: the worker is done.
        self.running.lock().unwrap_or_else(|p| p.into_inner()).take();
        let status = child.wait();
        let _ = relay.join();
        if let Err(e) = sent {
            return Err(fail(format!("cannot send the job: {e}")));
        }
        match (read, decode_result(&out)) {
            (Ok(_), Some(result)) => result,
            _ => Err(fail(format!(
                "ended ({}) without a result",
                status.map_or_else(|e| e.to_string(), |s| s.to_string())
            ))),
        }
    }

    /// Ask the running worker, if any, to cancel.
    pub fn cancel(&self) {
        if let Some(stdin) = self.running.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            let _ = stdin.write_all(b"cancel\n").and_then(|()| stdin.flush());
        }
    }
}

/// Log a worker's log line again in the daemon, at its level.
fn relog(line: &str) {
    let trimmed = line.trim_start();
    let (level, message) = trimmed.split_once(' ').unwrap_or(("", trimmed));
    let message = message.trim_start();
    match level {
        "ERROR" => tracing::error!(target: "plugin", "{message}"),
        "WARN" => tracing::warn!(target: "plugin", "{message}"),
        "INFO" => tracing::info!(target: "plugin", "{message}"),
        "DEBUG" => tracing::debug!(target: "plugin", "{message}"),
        "TRACE" => tracing::trace!(target: "plugin", "{message}"),
        // Not the worker's log format: what a plugin's commands print.
        _ => tracing::info!(target: "plugin", "replica worker: {trimmed}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> Job {
        Job {
            dir: "/usr/lib/palisade/plugins".into(),
            plugin: "basebackup".into(),
            params: PluginParams {
                scope: "main".into(),
                name: "node2".into(),
                config_json: r#"{"max-rate":"10M"}"#.into(),
            },
            request: ReplicaRequest {
                scope: "main".into(),
                name: "node2".into(),
                role: "replica".into(),
                data_dir: "/var/lib/postgresql/15/main".into(),
                bin_dir: "/usr/lib/postgresql/15/bin".into(),
                connstring: Some("host=10.0.0.1 port=5432 user=replicator".into()),
                env: vec![("PGPASSFILE".into(), "/tmp/pgpass".into()), ("PGAPPNAME".into(), "node2".into())],
                cwd: "/var/lib/postgresql".into(),
            },
            log_level: "INFO".into(),
        }
    }

    #[test]
    fn jobs_and_results_come_back_as_they_were_sent() {
        let mut without_leader = job();
        without_leader.request.connstring = None;
        without_leader.request.env.clear();
        for j in [job(), without_leader] {
            assert_eq!(Job::from_json(&j.to_json()), Ok(j.clone()));
        }
        let results: Vec<PluginResult<()>> = vec![
            Ok(()),
            Err(PluginError::new(ErrorKind::Config, "postgresql.basebackup: 'max-rate' is not a string")),
            Err(PluginError::new(ErrorKind::Other, "pg_basebackup exited with code 1")),
            Err(PluginError::new(ErrorKind::Panic, "panic at src/lib.rs:1: boom")),
        ];
        for r in results {
            assert_eq!(decode_result(&encode_result(&r)), Some(r.clone()));
        }
    }

    #[test]
    fn a_bad_job_or_result_is_named() {
        let mut v = job().to_json();
        v["request"]["env"] = json!([["PGPASSFILE"]]);
        assert_eq!(Job::from_json(&v), Err("an 'env' entry is not a pair of strings".into()));
        let mut v = job().to_json();
        v["request"]["connstring"] = json!(5432);
        assert_eq!(Job::from_json(&v), Err("'connstring' is not a string".into()));
        let mut v = job().to_json();
        v.as_object_mut().unwrap().remove("params");
        assert_eq!(Job::from_json(&v), Err("no 'params'".into()));
        for garbage in ["", "{", "{}", r#"{"ok": false}"#, r#"{"error": {"kind": "config"}}"#] {
            assert_eq!(decode_result(garbage), None, "{garbage}");
        }
    }

    #[test]
    fn an_unreadable_job_gets_an_error_result_not_a_crash() {
        let mut out = Vec::new();
        serve(std::io::Cursor::new(b"not json\n".to_vec()), &mut out, |_| panic!("no log for a bad job")).unwrap();
        let result = decode_result(&String::from_utf8(out).unwrap()).unwrap();
        let e = result.unwrap_err();
        assert!(e.message.starts_with("replica worker: unreadable job:"), "{}", e.message);
    }

    #[test]
    fn a_missing_plugin_is_reported_as_the_result() {
        let mut j = job();
        j.dir = std::env::temp_dir().join("palisade-no-plugins-here");
        let mut out = Vec::new();
        let mut level = String::new();
        serve(std::io::Cursor::new(format!("{}\n", j.to_json()).into_bytes()), &mut out, |l| level = l.to_string())
            .unwrap();
        assert_eq!(level, "INFO");
        let e = decode_result(&String::from_utf8(out).unwrap()).unwrap().unwrap_err();
        assert_eq!(e.kind, ErrorKind::Config);
        assert!(e.message.contains("libpalisade_replica_basebackup.so"), "{}", e.message);
    }
}
