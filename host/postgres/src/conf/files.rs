//! Where the configuration files are, and the file operations Patroni
//! performs on them (rename of the original postgresql.conf, signal files,
//! backups, cleaning postgresql.auto.conf).

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use palisade_config::PostgresqlConfig;

use super::params::is_recovery_parameter;

/// The name of the renamed original postgresql.conf.
pub const BASE_CONF_NAME: &str = "postgresql.base.conf";

/// Paths of every file this crate writes or reads next to PostgreSQL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfPaths {
    pub data_dir: PathBuf,
    pub config_dir: PathBuf,
    /// `<config_dir>/postgresql.conf`: ours.
    pub postgresql_conf: PathBuf,
    /// `<config_dir>/postgresql.base.conf`: the user's original file.
    pub base_conf: PathBuf,
    /// `postgresql.custom_conf`, included instead of the base file.
    pub custom_conf: Option<PathBuf>,
    pub pg_hba: PathBuf,
    pub pg_ident: PathBuf,
    pub auto_conf: PathBuf,
    pub standby_signal: PathBuf,
    pub recovery_signal: PathBuf,
    /// `postgresql.pgpass`.
    pub pgpass: PathBuf,
}

impl ConfPaths {
    pub fn new(local: &PostgresqlConfig) -> Self {
        let data_dir = absolute(&local.data_dir);
        let config_dir =
            if local.config_dir.as_os_str().is_empty() { data_dir.clone() } else { absolute(&local.config_dir) };
        Self {
            postgresql_conf: config_dir.join("postgresql.conf"),
            base_conf: config_dir.join(BASE_CONF_NAME),
            custom_conf: local.custom_conf.clone(),
            pg_hba: config_dir.join("pg_hba.conf"),
            pg_ident: config_dir.join("pg_ident.conf"),
            auto_conf: data_dir.join("postgresql.auto.conf"),
            standby_signal: data_dir.join("standby.signal"),
            recovery_signal: data_dir.join("recovery.signal"),
            pgpass: absolute(&local.pgpass),
            data_dir,
            config_dir,
        }
    }

    /// What postgresql.conf includes: `custom_conf`, or `postgresql.base.conf`.
    pub fn include(&self) -> String {
        match &self.custom_conf {
            Some(c) => c.to_string_lossy().into_owned(),
            None => BASE_CONF_NAME.to_string(),
        }
    }

    /// `standby.signal` or `recovery.signal` exists: the server starts in
    /// recovery (Patroni's `recovery_conf_exists` for 12+).
    pub fn recovery_signal_exists(&self) -> bool {
        self.standby_signal.exists() || self.recovery_signal.exists()
    }
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().map(|d| d.join(p)).unwrap_or_else(|_| p.to_path_buf())
    }
}

/// The mode for a file we write: inside the data directory the mode
/// PostgreSQL itself uses there (0640 when the data directory allows group
/// access, else 0600); elsewhere the process umask decides.
fn file_mode(path: &Path, data_dir: &Path) -> Option<u32> {
    if !path.starts_with(data_dir) {
        return None;
    }
    let dir_mode = fs::metadata(data_dir).map(|m| m.permissions().mode()).unwrap_or(0o700);
    Some(if dir_mode & 0o050 == 0o050 { 0o640 } else { 0o600 })
}

/// Write `content` to `path` when it differs from what is there; `Ok(true)`
/// when the file was written. Written in place, as Patroni does (a
/// symlinked configuration file stays a symlink).
pub fn write_if_changed(path: &Path, content: &str, data_dir: &Path) -> io::Result<bool> {
    match fs::read(path) {
        Ok(existing) if existing == content.as_bytes() => return Ok(false),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    fs::write(path, content)?;
    if let Some(mode) = file_mode(path, data_dir) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    }
    Ok(true)
}

/// The first time (no `custom_conf`, no postgresql.base.conf yet), rename
/// the user's postgresql.conf to postgresql.base.conf, so that ours can
/// include it. An empty base file is created when there was no
/// postgresql.conf at all. `Ok(true)` when something was done.
pub fn ensure_base_conf(paths: &ConfPaths) -> io::Result<bool> {
    if paths.custom_conf.is_some() || paths.base_conf.exists() {
        return Ok(false);
    }
    match fs::rename(&paths.postgresql_conf, &paths.base_conf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            write_if_changed(&paths.base_conf, "", &paths.data_dir)?;
            Ok(true)
        }
        Err(e) => Err(e),
    }
}

/// Remove recovery parameters from postgresql.auto.conf (a tool such as
/// `pg_basebackup -R` may have put them there; they would override ours).
/// `Ok(true)` when the file was rewritten.
pub fn sanitize_auto_conf(paths: &ConfPaths) -> io::Result<bool> {
    let text = match fs::read_to_string(&paths.auto_conf) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    let mut removed = false;
    let kept: String = text
        .split_inclusive('\n')
        .filter(|line| {
            let name: String = line.trim().chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
            let rest = line.trim()[name.len()..].trim_start();
            let is_recovery = !name.is_empty() && rest.starts_with('=') && is_recovery_parameter(&name);
            removed |= is_recovery;
            !is_recovery
        })
        .collect();
    if removed {
        fs::write(&paths.auto_conf, kept)?;
    }
    Ok(removed)
}

/// Create `standby.signal` (`standby: true`) or `recovery.signal`, removing
/// the other. `Ok(true)` when a file was created or removed.
pub fn write_signal(paths: &ConfPaths, standby: bool) -> io::Result<bool> {
    let (wanted, other) = if standby {
        (&paths.standby_signal, &paths.recovery_signal)
    } else {
        (&paths.recovery_signal, &paths.standby_signal)
    };
    let mut changed = remove_if_exists(other)?;
    if !wanted.exists() {
        write_if_changed(wanted, "", &paths.data_dir)?;
        changed = true;
    }
    Ok(changed)
}

/// Remove `standby.signal`, `recovery.signal` and a pre-12 `recovery.conf`.
/// `Ok(true)` when anything was removed.
pub fn remove_recovery_files(paths: &ConfPaths) -> io::Result<bool> {
    let mut changed = false;
    for p in [&paths.standby_signal, &paths.recovery_signal, &paths.data_dir.join("recovery.conf")] {
        changed |= remove_if_exists(p)?;
    }
    Ok(changed)
}

/// Remove a file; `Ok(false)` when it was not there.
pub fn remove_if_exists(path: &Path) -> io::Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// The files Patroni backs up into the data directory (`<name>.backup`):
/// postgresql.conf, postgresql.base.conf (unless `custom_conf`), and
/// pg_hba.conf / pg_ident.conf when they are ours.
fn files_to_save(paths: &ConfPaths, custom_hba: bool, custom_ident: bool) -> Vec<&'static str> {
    let mut names = vec!["postgresql.conf"];
    if paths.custom_conf.is_none() {
        names.push(BASE_CONF_NAME);
    }
    if !custom_hba {
        names.push("pg_hba.conf");
    }
    if !custom_ident {
        names.push("pg_ident.conf");
    }
    names
}

/// Patroni's `save_configuration_files`: copy the configuration files to
/// `<data_dir>/<name>.backup`, so that a replica cloned from this data
/// directory (or this node after a restore) can get them back.
pub fn save_configuration_files(paths: &ConfPaths, custom_hba: bool, custom_ident: bool) -> io::Result<()> {
    for name in files_to_save(paths, custom_hba, custom_ident) {
        let source = paths.config_dir.join(name);
        if source.is_file() {
            let backup = paths.data_dir.join(format!("{name}.backup"));
            fs::copy(&source, &backup)?;
            if let Some(mode) = file_mode(&backup, &paths.data_dir) {
                fs::set_permissions(&backup, fs::Permissions::from_mode(mode))?;
            }
        }
    }
    Ok(())
}

/// Patroni's `restore_configuration_files`: bring back missing
/// configuration files from their `.backup` copies (an empty pg_ident.conf
/// when there is no copy).
pub fn restore_configuration_files(paths: &ConfPaths, custom_hba: bool, custom_ident: bool) -> io::Result<()> {
    for name in files_to_save(paths, custom_hba, custom_ident) {
        let target = paths.config_dir.join(name);
        if target.is_file() {
            continue;
        }
        let backup = paths.data_dir.join(format!("{name}.backup"));
        if backup.is_file() {
            fs::copy(&backup, &target)?;
        } else if name == "pg_ident.conf" {
            fs::write(&target, "")?;
        } else {
            continue;
        }
        if let Some(mode) = file_mode(&target, &paths.data_dir) {
            fs::set_permissions(&target, fs::Permissions::from_mode(mode))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conf::params::tests::local_config;

    fn scratch(name: &str) -> ConfPaths {
        let dir = std::env::temp_dir().join(format!("palisade-files-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
        let mut local = local_config();
        local.data_dir = dir.clone();
        local.config_dir = dir.clone();
        local.pgpass = dir.join("pgpass");
        ConfPaths::new(&local)
    }

    #[test]
    fn base_conf_renamed_once() {
        let p = scratch("base");
        fs::write(&p.postgresql_conf, "shared_buffers = 1GB\n").unwrap();
        assert!(ensure_base_conf(&p).unwrap());
        assert_eq!(fs::read_to_string(&p.base_conf).unwrap(), "shared_buffers = 1GB\n");
        fs::write(&p.postgresql_conf, "ours").unwrap();
        assert!(!ensure_base_conf(&p).unwrap());
        assert_eq!(fs::read_to_string(&p.base_conf).unwrap(), "shared_buffers = 1GB\n");
        assert_eq!(p.include(), "postgresql.base.conf");
        fs::remove_dir_all(&p.data_dir).unwrap();
    }

    #[test]
    fn writes_only_changes_with_data_dir_modes() {
        let p = scratch("write");
        assert!(write_if_changed(&p.pg_hba, "a\n", &p.data_dir).unwrap());
        assert!(!write_if_changed(&p.pg_hba, "a\n", &p.data_dir).unwrap());
        assert!(write_if_changed(&p.pg_hba, "b\n", &p.data_dir).unwrap());
        assert_eq!(fs::metadata(&p.pg_hba).unwrap().permissions().mode() & 0o777, 0o600);
        fs::remove_dir_all(&p.data_dir).unwrap();
    }

    #[test]
    fn signals_and_auto_conf() {
        let p = scratch("signals");
        assert!(write_signal(&p, true).unwrap());
        assert!(!write_signal(&p, true).unwrap());
        assert!(p.standby_signal.exists() && p.recovery_signal_exists());
        assert!(write_signal(&p, false).unwrap());
        assert!(!p.standby_signal.exists() && p.recovery_signal.exists());
        assert!(remove_recovery_files(&p).unwrap());
        assert!(!p.recovery_signal_exists());
        fs::write(&p.auto_conf, "# Do not edit\nwork_mem = '8MB'\nprimary_conninfo = 'host=x'\nrestore_command='cp'\n")
            .unwrap();
        assert!(sanitize_auto_conf(&p).unwrap());
        assert_eq!(fs::read_to_string(&p.auto_conf).unwrap(), "# Do not edit\nwork_mem = '8MB'\n");
        assert!(!sanitize_auto_conf(&p).unwrap());
        fs::remove_dir_all(&p.data_dir).unwrap();
    }

    #[test]
    fn backups_round_trip() {
        let p = scratch("backup");
        fs::write(&p.postgresql_conf, "ours\n").unwrap();
        fs::write(&p.base_conf, "base\n").unwrap();
        fs::write(&p.pg_hba, "hba\n").unwrap();
        save_configuration_files(&p, false, false).unwrap();
        assert_eq!(fs::read_to_string(p.data_dir.join("pg_hba.conf.backup")).unwrap(), "hba\n");
        fs::remove_file(&p.pg_hba).unwrap();
        fs::remove_file(&p.base_conf).unwrap();
        restore_configuration_files(&p, false, false).unwrap();
        assert_eq!(fs::read_to_string(&p.pg_hba).unwrap(), "hba\n");
        assert_eq!(fs::read_to_string(&p.base_conf).unwrap(), "base\n");
        assert_eq!(fs::read_to_string(&p.pg_ident).unwrap(), "");
        fs::remove_dir_all(&p.data_dir).unwrap();
    }
}
