use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::{Binaries, CommandError, CommandOutput, Env, Invocation, Program};

/// `postgres --single -D <data_dir> [-c name=value ...] <database>`: a
/// single-user backend. With no input it runs crash recovery, writes a
/// shutdown checkpoint and exits: the way to get a crashed data directory
/// into a clean `shut down` state (Patroni's `ensure_clean_shutdown`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SingleUserArgs {
    pub data_dir: PathBuf,
    /// `-c name=value` options, passed in name order.
    pub options: BTreeMap<String, String>,
    /// Patroni uses `template1`.
    pub database: String,
}

pub async fn single_user(bins: &Binaries, args: &SingleUserArgs) -> Result<CommandOutput, CommandError> {
    let mut inv =
        Invocation::new(bins.path(Program::Postgres), Env::c_locale()).arg("--single").arg("-D").arg(&args.data_dir);
    for (name, value) in &args.options {
        inv = inv.arg("-c").arg(format!("{name}={value}"));
    }
    inv.arg(&args.database).output().await?.success()
}

/// `postgres -D <data_dir> -C <name> --config-file=<file>`: the value a
/// (re)started server would use, read from the configuration files (it
/// works while the server runs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShowSettingArgs {
    pub data_dir: PathBuf,
    pub config_file: PathBuf,
    pub name: String,
}

pub async fn show_setting(bins: &Binaries, args: &ShowSettingArgs) -> Result<String, CommandError> {
    let mut config = std::ffi::OsString::from("--config-file=");
    config.push(&args.config_file);
    let out = Invocation::new(bins.path(Program::Postgres), Env::c_locale())
        .arg("-D")
        .arg(&args.data_dir)
        .arg("-C")
        .arg(&args.name)
        .arg(config)
        .timeout(Duration::from_secs(30))
        .output()
        .await?
        .success()?;
    Ok(out.stdout.trim().to_string())
}

/// One line of `postgres --describe-config`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GucInfo {
    pub name: String,
    /// `postmaster`, `sighup`, `superuser`, `user`, `internal`, `backend`...
    pub context: String,
    /// `BOOLEAN`, `INTEGER`, `REAL`, `STRING`, `ENUM`.
    pub vartype: String,
}

impl GucInfo {
    /// Changing it needs a restart.
    pub fn needs_restart(&self) -> bool {
        self.context == "postmaster"
    }
}

/// The settings this PostgreSQL build knows (Patroni's `available_gucs`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GucCatalog {
    by_name: BTreeMap<String, GucInfo>,
}

impl GucCatalog {
    /// Parse `postgres --describe-config` output (tab-separated).
    pub fn parse(output: &str) -> Self {
        let by_name = output
            .lines()
            .filter_map(|line| {
                let mut f = line.split('\t');
                let name = f.next()?.trim();
                let context = f.next()?.to_string();
                let _group = f.next()?;
                let vartype = f.next()?.to_string();
                (!name.is_empty()).then(|| (name.to_lowercase(), GucInfo { name: name.to_string(), context, vartype }))
            })
            .collect();
        Self { by_name }
    }

    /// Case-insensitive lookup.
    pub fn get(&self, name: &str) -> Option<&GucInfo> {
        self.by_name.get(&name.to_lowercase())
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// `postgres --describe-config`.
pub async fn describe_config(bins: &Binaries) -> Result<GucCatalog, CommandError> {
    let out = Invocation::new(bins.path(Program::Postgres), Env::c_locale())
        .arg("--describe-config")
        .timeout(Duration::from_secs(30))
        .output()
        .await?
        .success()?;
    let catalog = GucCatalog::parse(&out.stdout);
    if catalog.is_empty() {
        return Err(CommandError::Output { program: out.program, message: "no settings described".into() });
    }
    Ok(catalog)
}

/// `postgres --version` as a version number (`15.18` → 150018).
pub async fn postgres_version(bins: &Binaries) -> Result<u32, CommandError> {
    let out = Invocation::new(bins.path(Program::Postgres), Env::c_locale())
        .arg("--version")
        .timeout(Duration::from_secs(30))
        .output()
        .await?
        .success()?;
    parse_version(&out.stdout).ok_or_else(|| CommandError::Output {
        program: out.program,
        message: format!("no version in {:?}", out.stdout),
    })
}

/// `postgres (PostgreSQL) 15.18 (Debian ...)` → 150018; `9.6.24` → 90624.
pub(crate) fn parse_version(text: &str) -> Option<u32> {
    let word = text.split_whitespace().nth(2)?;
    let numeric: String = word.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
    let parts: Vec<u32> = numeric.split('.').map(|p| p.parse().ok()).collect::<Option<_>>()?;
    match parts.as_slice() {
        [major, minor] if *major >= 10 => Some(major * 10000 + minor),
        [major, minor, patch] => Some(major * 10000 + minor * 100 + patch),
        [major] if *major >= 10 => Some(major * 10000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        for (text, want) in [
            ("postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n", Some(150018)),
            ("postgres (PostgreSQL) 9.6.24\n", Some(90624)),
            ("postgres (PostgreSQL) 17devel\n", Some(170000)),
            ("garbage", None),
        ] {
            assert_eq!(parse_version(text), want, "{text}");
        }
    }

    #[test]
    fn catalog() {
        let c = GucCatalog::parse(
            "archive_mode\tpostmaster\tWrite-Ahead Log / Archiving\tENUM\toff\t\t\tAllows archiving.\t\n\
             work_mem\tuser\tResource Usage / Memory\tINTEGER\t4096\t64\t2147483647\tSets memory.\t\n",
        );
        assert_eq!(c.len(), 2);
        assert!(c.get("ARCHIVE_MODE").unwrap().needs_restart());
        assert!(!c.get("work_mem").unwrap().needs_restart());
        assert!(!c.contains("nonsense"));
    }
}
