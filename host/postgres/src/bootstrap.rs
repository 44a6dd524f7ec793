//! Creating a new cluster: initdb with `bootstrap.initdb` options, a custom
//! bootstrap method, and the `post_bootstrap` script (Patroni's
//! `bootstrap.py`).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;

use palisade_config::{InitdbOption, RoleAuth};
use palisade_pycompat::patroni::INITDB_NOT_ALLOWED;
use palisade_pycompat::shlex;
use serde_json::{Map, Value};

use crate::binaries::{initdb, Binaries, CommandError, InitdbArgs};
use crate::conf::{pgpass_content, write_pgpass};
use crate::sql::LocalConnection;

/// Bootstrapping failed.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// A `bootstrap` setting cannot be used.
    #[error("bootstrap.{section}: {message}")]
    Config { section: String, message: String },
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A script (custom bootstrap, post_bootstrap) exited unsuccessfully.
    #[error("{script} exited with {status}")]
    Script { script: String, status: ExitStatus },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BootstrapError {
    let what = what.into();
    move |source| BootstrapError::Io { what, source }
}

/// `bootstrap.initdb` entries as initdb arguments (`- data-checksums` →
/// `--data-checksums`, `- encoding: UTF8` → `--encoding=UTF8`), each value
/// unquoted once as Patroni's `process_user_options` does (`'"a b"'` →
/// `a b`).
pub fn initdb_options(options: &[InitdbOption]) -> Result<Vec<String>, BootstrapError> {
    options
        .iter()
        .map(|o| {
            let name = match o {
                InitdbOption::Flag(n) | InitdbOption::KeyValue(n, _) => n,
            };
            if INITDB_NOT_ALLOWED.contains(&name.as_str()) {
                return Err(BootstrapError::Config {
                    section: "initdb".into(),
                    message: format!("{name} option for initdb is not allowed"),
                });
            }
            Ok(match o {
                InitdbOption::Flag(n) => format!("--{n}"),
                InitdbOption::KeyValue(n, v) => format!("--{n}={}", shlex::unquote(v)),
            })
        })
        .collect()
}

/// A file removed when dropped.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

fn temp_password_file(password: &str) -> Result<TempFile, BootstrapError> {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let path = std::env::temp_dir().join(format!("palisade-pwfile-{}-{nanos}", std::process::id()));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(io_err(format!("create the password file {}", path.display())))?;
    let guard = TempFile(path);
    f.write_all(password.as_bytes()).map_err(io_err("write the password file"))?;
    Ok(guard)
}

/// Run initdb as Patroni's `_initdb` does: the `bootstrap.initdb`
/// options, `--username` and (when there is a password) `--pwfile` with a
/// temporary 0600 file that is removed afterwards.
pub async fn run_initdb(
    bins: &Binaries,
    data_dir: &Path,
    superuser: &RoleAuth,
    options: &[InitdbOption],
) -> Result<(), BootstrapError> {
    let options = initdb_options(options)?;
    let pwfile = superuser.password.as_deref().map(temp_password_file).transpose()?;
    let args = InitdbArgs {
        data_dir: data_dir.to_path_buf(),
        username: Some(superuser.username.clone()).filter(|u| !u.is_empty()),
        pwfile: pwfile.as_ref().map(|f| f.0.clone()),
        options,
    };
    initdb(bins, &args).await?;
    Ok(())
}

/// A custom bootstrap method (`bootstrap.method: <name>` and its section).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustomBootstrap {
    pub method: String,
    /// The command and its arguments.
    pub argv: Vec<String>,
    /// Keep the recovery configuration the command left (pgBackRest, Barman).
    pub keep_existing_recovery_conf: bool,
    /// `recovery_conf` of the section: recovery settings to start with.
    pub recovery_conf: Option<Map<String, Value>>,
}

/// Keys of a custom bootstrap section that are not passed as arguments.
const RESERVED: &[&str] = &["command", "no_params", "keep_existing_recovery_conf", "recovery_conf", "scope", "datadir"];

/// Build the command of custom bootstrap method `method` from its section,
/// as Patroni's `_custom_bootstrap`: `command` split like a shell would,
/// then `--scope=<scope> --datadir=<data_dir>` unless `no_params`, then
/// every other key as `--key=value`.
pub fn custom_bootstrap(
    method: &str,
    section: &Value,
    scope: &str,
    data_dir: &Path,
) -> Result<CustomBootstrap, BootstrapError> {
    let err = |message: String| BootstrapError::Config { section: method.to_string(), message };
    let map = section.as_object().ok_or_else(|| err("must be a map".into()))?;
    let command = map.get("command").and_then(Value::as_str).ok_or_else(|| err("has no command".into()))?;
    let mut argv = shlex::split(command).map_err(|e| err(format!("cannot split command {command:?}: {e}")))?;
    if argv.is_empty() {
        return Err(err(format!("cannot split command {command:?}: no words")));
    }
    // Patroni tests these with Python's truth value (`if config.get(...)`).
    let truthy = |key: &str| map.get(key).is_some_and(palisade_pycompat::py::truthy);
    if !truthy("no_params") {
        argv.push(format!("--scope={scope}"));
        argv.push(format!("--datadir={}", data_dir.display()));
    }
    for (key, value) in map {
        if !RESERVED.contains(&key.as_str()) {
            // Patroni's `f"--{arg}={val}"`: Python's `str()` of any value
            // (`None`, `['a', 1]`, `{'k': 'v'}` too).
            argv.push(format!("--{key}={}", palisade_pycompat::py::to_str(value)));
        }
    }
    Ok(CustomBootstrap {
        method: method.to_string(),
        argv,
        keep_existing_recovery_conf: truthy("keep_existing_recovery_conf"),
        recovery_conf: map.get("recovery_conf").and_then(Value::as_object).cloned(),
    })
}

/// Run a user script (custom bootstrap, post_bootstrap, before_stop...) in
/// the daemon's working directory with the daemon's environment plus
/// `extra_env`; returns its exit status.
pub async fn run_script(argv: &[String], extra_env: &BTreeMap<String, OsString>) -> Result<ExitStatus, BootstrapError> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| BootstrapError::Config { section: "command".into(), message: "empty command".into() })?;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args).envs(extra_env).stdin(std::process::Stdio::null()).kill_on_drop(true);
    cmd.status()
        .await
        .map_err(|source| BootstrapError::Command(CommandError::Spawn { program: PathBuf::from(program), source }))
}

/// Run `script` (Patroni's `call_post_bootstrap`): split like a shell
/// would, called with the superuser connection string (no password) as its
/// last argument, `PGPASSFILE` pointing at a pgpass file written for the
/// superuser, and `PGOPTIONS=-c synchronous_commit=local -c
/// statement_timeout=0`.
pub async fn run_post_bootstrap(
    script: &str,
    conn: &LocalConnection,
    pgpass: &Path,
    major: u32,
) -> Result<(), BootstrapError> {
    let split_error = |why: String| BootstrapError::Config {
        section: "post_bootstrap".into(),
        message: format!("cannot split {script:?}: {why}"),
    };
    let mut argv = shlex::split(script).map_err(|e| split_error(e.to_string()))?;
    if argv.is_empty() {
        return Err(split_error("no words".into()));
    }
    argv.push(conn.dsn_without_password(major));
    let mut env = BTreeMap::new();
    if let Some(content) = pgpass_content(&conn.conn_params()) {
        write_pgpass(pgpass, &content).map_err(io_err(format!("write {}", pgpass.display())))?;
        env.insert("PGPASSFILE".to_string(), pgpass.as_os_str().to_os_string());
    }
    env.insert("PGOPTIONS".to_string(), "-c synchronous_commit=local -c statement_timeout=0".into());
    let status = run_script(&argv, &env).await?;
    if status.success() {
        Ok(())
    } else {
        Err(BootstrapError::Script { script: script.to_string(), status })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn initdb_option_table() {
        let ok = initdb_options(&[
            InitdbOption::Flag("data-checksums".into()),
            InitdbOption::KeyValue("encoding".into(), "UTF8".into()),
            InitdbOption::KeyValue("locale".into(), "\"en_US.UTF-8\"".into()),
            InitdbOption::KeyValue("auth-host".into(), "a b".into()),
        ])
        .unwrap();
        assert_eq!(ok, vec!["--data-checksums", "--encoding=UTF8", "--locale=en_US.UTF-8", "--auth-host=a b"]);
        for bad in ["pgdata", "pwfile", "nosync", "sync-only", "version"] {
            let err = initdb_options(&[InitdbOption::KeyValue(bad.into(), "x".into())]).unwrap_err();
            assert!(err.to_string().contains(&format!("{bad} option for initdb is not allowed")), "{err}");
        }
    }

    #[test]
    fn custom_bootstrap_commands() {
        let section = json!({"command": "/usr/bin/restore --stanza 'main db'", "arg1": "value1", "flag": true,
                             "keep_existing_recovery_conf": true, "recovery_conf": {"restore_command": "x"}});
        let c = custom_bootstrap("clone", &section, "batman", Path::new("/data")).unwrap();
        assert_eq!(
            c.argv,
            vec![
                "/usr/bin/restore",
                "--stanza",
                "main db",
                "--scope=batman",
                "--datadir=/data",
                "--arg1=value1",
                "--flag=True"
            ]
        );
        assert!(c.keep_existing_recovery_conf);
        assert_eq!(c.recovery_conf.unwrap().get("restore_command"), Some(&json!("x")));
        let c =
            custom_bootstrap("clone", &json!({"command": "restore", "no_params": true}), "s", Path::new("/d")).unwrap();
        assert_eq!(c.argv, vec!["restore"]);
        assert!(!c.keep_existing_recovery_conf);
        // Python's truth value, as Patroni's `if config.get('no_params')`.
        let c = custom_bootstrap("clone", &json!({"command": "restore", "no_params": "false"}), "s", Path::new("/d"))
            .unwrap();
        assert_eq!(c.argv, vec!["restore"]);
        let c = custom_bootstrap(
            "clone",
            &json!({"command": "restore", "no_params": true, "n": null, "l": ["a", 1], "m": {"k": "v"}, "f": 1.0}),
            "s",
            Path::new("/d"),
        )
        .unwrap();
        assert_eq!(c.argv, vec!["restore", "--n=None", "--l=['a', 1]", "--m={'k': 'v'}", "--f=1.0"]);
        assert!(custom_bootstrap("clone", &json!({"no_params": true}), "s", Path::new("/d")).is_err());
        assert!(custom_bootstrap("clone", &json!("x"), "s", Path::new("/d")).is_err());
    }

    #[tokio::test]
    async fn password_file_is_private_and_removed() {
        let f = temp_password_file("secret").unwrap();
        let path = f.0.clone();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::read_to_string(&path).unwrap(), "secret");
        drop(f);
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn scripts_get_the_environment_and_status() {
        let mut env = BTreeMap::new();
        env.insert("PALISADE_TEST_VALUE".to_string(), OsString::from("42"));
        let ok = run_script(&["/bin/sh".into(), "-c".into(), "test \"$PALISADE_TEST_VALUE\" = 42".into()], &env)
            .await
            .unwrap();
        assert!(ok.success());
        let failed = run_script(&["/bin/sh".into(), "-c".into(), "exit 4".into()], &env).await.unwrap();
        assert_eq!(failed.code(), Some(4));
        assert!(run_script(&[], &env).await.is_err());
    }
}
